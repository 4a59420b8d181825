"""avatars: face avatars built on face3d's morphable models and renderer.

Today: turntable renders and random-identity exports of any morphable model. Sketch-to-mesh
modeling and dynamic NeRF portraits build on the same ``face3d`` layers.
"""
__all__: list[str] = []
