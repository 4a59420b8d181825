"""The Python API: audio in, expression sequence out.

>>> import audio2exp
>>> seq = audio2exp.predict(samples, 16000)            # doctest: +SKIP
>>> seq["expression"].shape, seq["jaw"].shape          # doctest: +SKIP
((T, n_expression), (T, 3))

Weights are looked up as ``assets/audio2exp_<model name>.pt``; they must have been trained for
the model (its name and geometry fingerprint are checked).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from audio2exp.network import FRAME_OFFSET, FRAME_RATE, Audio2Exp
from face3d.models import MorphableModel

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass(frozen=True)
class PredictConfig:
    fps: float = 25.0
    blinks: bool = False  # procedural eye blinks (eyeBlink_* channels)
    head_motion: bool = False  # slight smooth head motion (neck rotation, about 1-2 degrees)
    seed: int = 0  # for blinks and head motion
    silence_db: float = -60.0  # frames quieter than this (dBFS RMS over 50 ms) are forced to rest
    closure: tuple[float, float] = (0.7, 1.0)  # P(PP) / P(best other viseme): lips start to close / fully closed
    chunk: int = 1000  # network frames per inference chunk (bounds memory for long audio)


class Predictor:
    """A trained network bound to its morphable model."""

    def __init__(self, net: Audio2Exp, model: MorphableModel, info: dict | None = None):
        if net.cfg.n_expression != model.n_expression:
            raise ValueError(f"weights predict {net.cfg.n_expression} expressions, model {model.name!r} has {model.n_expression}")
        from audio2exp.rig import model_rig

        self.net, self.model, self.info = net.eval(), model, info or {}
        self.rig = model_rig(model)
        # The loss sees lip vertices only, so channels that do not move the lips (gaze, brows,
        # blinks) are unconstrained in training and come out as noise (eyeLookDown up to 1.8 on
        # speech, which shuts the eyes): keep only the channels that move a lip vertex by 0.1 mm.
        lips = model.region("lips")
        reach = model.expression_basis[lips].norm(dim=1).amax(0)  # (K,) mm at weight 1
        self.channels = (reach > 0.1).numpy().astype(np.float32)

    @classmethod
    def load(cls, path, model: MorphableModel) -> "Predictor":
        from audio2exp.train import model_fingerprint

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"audio2exp weights not found: {path} (train them with `audio2exp train --model "
                                    f"{model.name} --out {path}`)")
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if blob.get("expression_names") != list(model.expression_names):
            raise ValueError(f"{path}: trained for model {blob.get('model_name')!r} with {len(blob.get('expression_names', []))} "
                             f"expressions, not for {model.name!r} ({model.n_expression}); retrain for this model")
        if blob.get("model_fingerprint") != model_fingerprint(model):
            raise ValueError(f"{path}: trained on other geometry of {model.name!r} (fingerprint mismatch); retrain")
        return cls(Audio2Exp.from_export(blob["network"]), model, {k: v for k, v in blob.items() if k != "network"})

    def raw(self, audio16k: np.ndarray, chunk: int = 1000) -> dict[str, np.ndarray]:
        """Network outputs at 50 Hz for (N,) 16 kHz audio: expression (T, K), jaw (T,), viseme (T, 15)."""
        from audio2exp.features import logmel

        mel = torch.from_numpy(logmel(audio16k))
        with torch.no_grad():
            y = self.net.infer(mel, chunk=chunk)
        return {k: v.numpy() for k, v in y.items()}

    def __call__(self, audio, sample_rate: int, cfg: PredictConfig = PredictConfig()) -> dict[str, np.ndarray]:
        from audio2exp.features import SAMPLE_RATE, resample, to_mono

        a, sr = to_mono(audio, sample_rate)
        a16 = resample(a, sr, SAMPLE_RATE)
        y = self.raw(a16, cfg.chunk)
        y["expression"] = y["expression"] * self.channels
        return finish(close_bilabials(y, self.rig, cfg.closure), a16, self.model, cfg)


def close_bilabials(y: dict[str, np.ndarray], rig, closure: tuple[float, float] = (0.7, 1.0)) -> dict[str, np.ndarray]:
    """The closure rule of the targets, applied to the network's own viseme head: where the
    probability of ``PP`` relative to the most probable other viseme exceeds ``closure[0]``,
    blend toward the closed ``PP`` pose (fully from ``closure[1]``, i.e. when PP is the most
    likely viseme). Regression alone averages a 30-60 ms closure with its open neighbours and
    leaves the lips apart; this keeps /p b m/ closed."""
    from audio2exp.phonemes import VISEME_INDEX

    pp = VISEME_INDEX["PP"]
    logit = y["viseme"]
    others = np.delete(logit, pp, axis=-1).max(-1)
    ratio = np.exp(logit[:, pp] - others)  # P(PP) / P(best other)
    c = np.clip((ratio - closure[0]) / max(closure[1] - closure[0], 1e-6), 0, 1)[:, None]
    out = dict(y)
    out["expression"] = (1 - c) * y["expression"] + c * rig.expression[pp][None]
    out["jaw"] = (1 - c[:, 0]) * y["jaw"] + c[:, 0] * rig.jaw[pp]
    out["p_closure"] = c[:, 0]
    return out


def finish(y: dict[str, np.ndarray], audio16k: np.ndarray, model: MorphableModel, cfg: PredictConfig) -> dict[str, np.ndarray]:
    """50 Hz network output -> a sequence at ``cfg.fps``: silence gate, resampling, extras."""
    from audio2exp.features import SAMPLE_RATE
    from audio2exp.targets import level_db

    duration = len(audio16k) / SAMPLE_RATE
    T = max(1, int(round(duration * cfg.fps)))
    t_out = np.arange(T) / cfg.fps
    t_net = FRAME_OFFSET + np.arange(len(y["jaw"])) / FRAME_RATE
    expr = np.stack([np.interp(t_out, t_net, y["expression"][:, k]) for k in range(y["expression"].shape[1])], 1)
    jaw_open = np.interp(t_out, t_net, y["jaw"])
    # Silence gate: a frame with (near) digital silence shows the rest pose whatever the network
    # says; a 50 ms level keeps the gate from chattering inside words.
    quiet = level_db(audio16k, SAMPLE_RATE, t_out, window=0.05) < cfg.silence_db
    keep = 1.0 - np.convolve(quiet.astype(float), np.ones(3) / 3, mode="same") if T >= 3 else (~quiet).astype(float)
    keep = np.where(quiet, 0.0, keep)
    expr *= keep[:, None]
    jaw = np.zeros((T, 3), np.float32)
    jaw[:, 0] = np.clip(jaw_open * keep, 0.0, None)  # the jaw does not over-close
    seq = {"expression": expr.astype(np.float32), "jaw": jaw, "fps": np.float32(cfg.fps)}
    rng = np.random.default_rng(cfg.seed)
    if cfg.blinks:
        seq["expression"] = seq["expression"] + blink_track(model, T, cfg.fps, rng)
    if cfg.head_motion:
        seq["neck"] = head_motion(T, cfg.fps, rng)
    return seq


def blink_track(model: MorphableModel, T: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(T, n_expression) eyeBlink_L/R (or eyeBlink) weights: blinks every 2-6 s, ~150 ms each
    (fast close, slower open). Zeros if the model has no blink channel."""
    from audio2exp.rig import resolve_channels

    out = np.zeros((T, model.n_expression), np.float32)
    chans, _ = resolve_channels(list(model.expression_names), {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0})
    if not chans:
        return out
    t = np.arange(T) / fps
    curve = np.zeros(T)
    s = rng.uniform(0.5, 3.0)
    while s < t[-1] + 1:
        d = t - s
        curve = np.maximum(curve, np.where(d < 0, np.exp(-(d / 0.04) ** 2), np.exp(-(d / 0.1) ** 2)))
        s += rng.uniform(2.0, 6.0)
    for i, w in chans.items():
        out[:, i] = (w * curve).astype(np.float32)
    return out


def head_motion(T: int, fps: float, rng: np.random.Generator, amplitude_deg: float = 1.5) -> np.ndarray:
    """(T, 3) radians of slight smooth neck rotation: a sum of three slow sines per axis."""
    t = np.arange(T)[:, None] / fps
    out = np.zeros((T, 3))
    for _ in range(3):
        f = rng.uniform(0.1, 0.5, 3)
        ph = rng.uniform(0, 2 * np.pi, 3)
        out += np.sin(2 * np.pi * f * t + ph) / 3
    return (np.deg2rad(amplitude_deg) * out * np.array([1.0, 1.0, 0.5])).astype(np.float32)


def default_weights(model: MorphableModel) -> Path:
    return ASSETS / f"audio2exp_{model.name}.pt"


@lru_cache(maxsize=4)
def _cached(model_spec: str, weights: str | None) -> Predictor:
    import face3d

    model = face3d.load_model(model_spec)
    return Predictor.load(weights or default_weights(model), model)


def load_predictor(model: str | MorphableModel = "builtin", weights=None) -> Predictor:
    """A :class:`Predictor` for ``model`` (a spec such as "builtin" or a loaded model)."""
    if isinstance(model, MorphableModel):
        return Predictor.load(weights or default_weights(model), model)
    return _cached(str(model), None if weights is None else str(weights))


def predict(audio, sample_rate: int, model: str | MorphableModel = "builtin", weights=None,
            fps: float = 25.0, blinks: bool = False, head_motion: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """Expression sequence for speech.

    Args:
        audio: (N,) or (N, channels) samples (float in [-1, 1] or integer PCM), any rate.
        sample_rate: Hz of ``audio``.
        model: model spec or :class:`MorphableModel` the weights were trained for.
        fps: output frame rate. blinks, head_motion: add procedural blinks / slight head motion.
    Returns:
        ``expression`` (T, n_expression) float32, ``jaw`` (T, 3) radians, ``fps``, and ``neck``
        (T, 3) radians with ``head_motion``; ``T = round(duration * fps)``, frame k at k / fps s.
    """
    return load_predictor(model, weights)(audio, sample_rate, PredictConfig(fps=fps, blinks=blinks, head_motion=head_motion, seed=seed))


def predict_file(path, model: str | MorphableModel = "builtin", **kw) -> dict[str, np.ndarray]:
    """:func:`predict` on any file ffmpeg decodes (any rate, mono or stereo)."""
    from audio2exp.features import SAMPLE_RATE, load_audio

    return predict(load_audio(path), SAMPLE_RATE, model, **kw)


class StreamingPredictor:
    """Streaming inference with bounded look-ahead.

    Feed audio pieces with :meth:`push`; each call returns the 50 Hz network frames that became
    final (their look-ahead, :attr:`lookahead_ms` <= 200 ms, has arrived); :meth:`flush` returns
    the rest at the end. The frames equal those of an offline pass over the whole signal.
    Memory stays bounded: only the attention context and the look-ahead are kept.
    """

    def __init__(self, predictor: Predictor, sample_rate: int = 16000):
        from audio2exp.features import FeatureConfig

        self.p, self.sr = predictor, sample_rate
        self.fc = FeatureConfig()
        self.past, self.future = predictor.net.context
        self.buf = np.zeros(self.fc.n_fft // 2, np.float32)  # the zeros an offline pass pads with
        self.buf_start = -(self.fc.n_fft // 2)  # sample index of buf[0]
        self.n_samples = 0
        self.done = 0  # network frames emitted

    @property
    def lookahead_ms(self) -> float:
        return self.p.net.lookahead_ms

    def _frames(self, end_frame: int, final: bool) -> dict[str, np.ndarray]:
        from audio2exp.features import logmel

        a = max(0, self.done - self.past)  # first network frame of the context
        hop = self.fc.hop
        need = 2 * a * hop - self.fc.n_fft // 2
        x = self.buf[need - self.buf_start:]
        T_mel = -(-self.n_samples // hop) if final else None
        stop = end_frame + (0 if final else self.future)
        n_mel = (T_mel - 2 * a) if final else 2 * (stop - a)
        mel = torch.from_numpy(logmel(x, self.fc, n=n_mel, left_padded=True))
        with torch.no_grad():
            y = self.p.net(mel[None])
        out = {k: v[0, self.done - a: end_frame - a].numpy() for k, v in y.items()}
        self.done = end_frame
        keep_from = 2 * max(0, self.done - self.past) * hop - self.fc.n_fft // 2
        if keep_from > self.buf_start:
            self.buf = self.buf[keep_from - self.buf_start:]
            self.buf_start = keep_from
        return out

    def push(self, audio16k: np.ndarray) -> dict[str, np.ndarray]:
        """Append (n,) float32 16 kHz samples; returns the newly final frames (possibly none)."""
        self.buf = np.concatenate([self.buf, np.asarray(audio16k, np.float32)])
        self.n_samples += len(audio16k)
        hop, half = self.fc.hop, self.fc.n_fft // 2
        # Mel frame m is complete once samples up to m * hop + half are in; network frame k needs
        # mel frames up to 2 (k + future) + 1.
        complete_mel = (self.n_samples - half) // hop + 1 if self.n_samples >= half else 0
        ready = complete_mel // 2 - self.future
        if ready <= self.done:
            return {}
        return self._frames(ready, final=False)

    def flush(self) -> dict[str, np.ndarray]:
        """The remaining frames once the stream has ended."""
        T = -(-(-(-self.n_samples // self.fc.hop)) // 2)
        if T <= self.done:
            return {}
        return self._frames(T, final=True)


def save_sequence(path, seq: dict[str, np.ndarray]) -> Path:
    """Write a sequence as ``.npz`` (readable by :func:`audio2exp.animate.load_sequence`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: np.asarray(v) for k, v in seq.items()})
    return path


def save_csv(path, seq: dict[str, np.ndarray], expression_names) -> Path:
    """ARKit-style CSV: one row per frame, ``time_s`` then one column per expression channel
    (named as the model names them, e.g. ``jawOpen``, ``mouthSmile_L``), then the jaw and, when
    present, neck rotation (``jawRotX..Z``, ``neckRotX..Z``, radians)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    e = np.asarray(seq["expression"])
    cols = [np.arange(len(e))[:, None] / float(seq.get("fps", 25.0)), e, np.asarray(seq["jaw"])]
    names = ["time_s", *expression_names, "jawRotX", "jawRotY", "jawRotZ"]
    if "neck" in seq:
        cols.append(np.asarray(seq["neck"]))
        names += ["neckRotX", "neckRotY", "neckRotZ"]
    np.savetxt(path, np.concatenate(cols, 1), delimiter=",", header=",".join(names), comments="", fmt="%.5f")
    return path
