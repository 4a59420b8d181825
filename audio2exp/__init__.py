"""audio2exp: speech to expression sequences, rendered as talking-head animation.

Today: rendering expression sequences (T, n_expression) of any face3d model to video, with the
audio muxed in. The audio-to-expression transformers write exactly such sequences.
"""
__all__: list[str] = []
