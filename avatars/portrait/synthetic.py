"""Synthetic talking-head clips with known truth, for testing the dynamic neural portrait.

A clip is a morphable-model head (any :class:`~face3d.models.MorphableModel`, by default the
built-in ICT-FaceKit head) with three things the model itself lacks, so a portrait that only
replays the 3DMM cannot reproduce it:

- **a skin texture**: the model's per-vertex albedo (or a flat skin tone) times per-vertex
  procedural variation -- smooth blotches, freckles on the face, pore-scale noise;
- **hair**: a second mesh, the scalp triangles pushed out along their normals by about
  ``hair_thickness_mm`` (smoothly varying, tapering to the hairline), dark with strand-like
  stripes evaluated per pixel; it moves rigidly with the skull (the model's head joint);
- **lighting fixed in the world**: ambient + Lambert + Blinn-Phong specular per pixel, from the
  renderer's world normals and the view vector to the camera at the origin, so the shading of a
  point on the face changes as the head turns.

The camera is :func:`face3d.reconstruct.camera.make_camera` (at the world origin, looking down
-z); the head's pose is the model's ``rotation`` / ``translation``. Frames are composited over a
fixed smooth background (the same image in every frame).

Held-out frames. The head yaws sinusoidally with period ``P = n_train / 2`` frames, so the
training part holds two full cycles and the held-out part (the last ``1 - train_fraction``,
half a cycle when that is 20 %) starts at a zero crossing and contains one yaw extreme. In the
training part every expression event (smile, jaw opening, brow raise; each a raised-cosine bump
of half-width ``P / 8``) is centred on a yaw zero crossing, i.e. expressions are only ever seen
with a near-frontal head and extreme yaw only with a neutral face. In the held-out part the
events (half-width ``P / 5``) are centred on the yaw extremes (a smile with the head turned by
the full yaw amplitude, then a jaw opening, ...): combinations of pose and expression no training
frame has. In (yaw / amplitude, pitch / amplitude, event weights) space the peak held-out frames
are more than 0.8 from every training frame (:func:`heldout_novelty`; 120 frames: 0.84 at most,
0.5 or more for 10 of the 24 held-out frames).
:func:`heldout_novelty` measures this distance. Blinks happen at random times throughout and
are left out of that measure.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from face3d.geometry.normals import vertex_normals
from face3d.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from face3d.models.base import MorphableModel
from face3d.reconstruct.camera import make_camera
from face3d.render import Renderer
from face3d.render.primitives import antialias, interpolate

# Expression events: name -> ARKit blendshape names and weights (a name missing from a model is
# looked up as its _L/_R pair, so "browInnerUp" works for ICT's browInnerUp_L/_R too).
EVENTS: dict[str, dict[str, float]] = {
    "smile": {"mouthSmile_L": 0.9, "mouthSmile_R": 0.9, "cheekSquint_L": 0.3, "cheekSquint_R": 0.3},
    "jaw": {"jawOpen": 0.55},
    "brows": {"browInnerUp": 0.8, "browOuterUp_L": 0.6, "browOuterUp_R": 0.6},
}
JAW_OPEN_RAD = 0.12  # jaw joint rotation (about +x) at the peak of a "jaw" event


@dataclass(frozen=True)
class SyntheticClipConfig:
    """Settings of :func:`synthetic_clip`.

    Attributes:
        frames: number of frames T.
        size: image width = height, px.
        fps: frame rate (only recorded, and used by :func:`write_clip`).
        seed: seed of every random choice (identity, texture noise, background, blink times).
        train_fraction: frames ``[0, round(train_fraction * T))`` are training frames. The
            held-out part holds a yaw extreme (and so an unseen combination) only when it is at
            least a quarter of a yaw cycle long, i.e. ``train_fraction <= 8/9``.
        yaw_deg, pitch_deg, roll_deg: amplitudes of the head motion, degrees.
        sway_mm: amplitude of the head's sideways (x) drift, mm; up-down drift is half of it.
        identity_scale: identity coefficients are ``identity_scale * N(0, 1)`` in units of the
            model's ``identity_std``; 0 gives the mean head.
        events: expression events cycled through (keys of :data:`EVENTS`).
        blink_every_s: mean time between blinks, seconds.
        hair_thickness_mm: mean offset of the hair surface from the scalp, mm.
        hair_color: linear RGB in [0, 1] of the hair.
        ambient, diffuse: shading weights (``albedo * (ambient + diffuse * max(n.l, 0))``).
        specular, shininess: Blinn-Phong strength and exponent of the skin.
        hair_specular, hair_shininess: the same for the hair.
        light_dir: direction towards the light in world coordinates (normalised internally);
            fixed for the whole clip.
        focal: focal length px; ``None``: ``2 * size`` (a portrait lens, ~28 deg field of view).
        distance: camera-to-head distance mm; ``None``: the head (the model's ``skull`` region)
            fills ``fill`` of the image height.
        fill: see ``distance``.
        backend: rasterization backend (:mod:`face3d.render.primitives`).
    """

    frames: int = 120
    size: int = 256
    fps: float = 25.0
    seed: int = 0
    train_fraction: float = 0.8
    yaw_deg: float = 30.0
    pitch_deg: float = 12.0
    roll_deg: float = 4.0
    sway_mm: float = 6.0
    identity_scale: float = 0.5
    events: tuple[str, ...] = ("smile", "jaw", "brows")
    blink_every_s: float = 1.6
    hair_thickness_mm: float = 11.0
    hair_color: tuple[float, float, float] = (0.16, 0.10, 0.06)
    ambient: float = 0.35
    diffuse: float = 0.7
    specular: float = 0.25
    shininess: float = 24.0
    hair_specular: float = 0.12
    hair_shininess: float = 10.0
    light_dir: tuple[float, float, float] = (0.5, 0.45, 0.75)
    focal: float | None = None
    distance: float | None = None
    fill: float = 0.6
    backend: str = "auto"

    def __post_init__(self):
        if self.frames < 2:
            raise ValueError(f"frames: expected at least 2, got {self.frames}")
        if self.size < 16:
            raise ValueError(f"size: expected at least 16 px, got {self.size}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction: expected a value in (0, 1), got {self.train_fraction}")
        unknown = [e for e in self.events if e not in EVENTS]
        if unknown or not self.events:
            raise ValueError(f"events: expected a non-empty tuple of {sorted(EVENTS)}, got {self.events}")


@dataclass
class SyntheticClip:
    """A rendered clip and its truth (numpy).

    Attributes:
        frames: (T, S, S, 3) uint8 images, row 0 at the top.
        masks: (T, S, S) bool, pixels whose centre the head or the hair covers (the rasterized
            coverage; antialiasing blends a one-pixel band on both sides of it).
        identity: (n_identity,) coefficients; expression: (T, n_expression) coefficients.
        jaw, rotation: (T, 3) axis-angle, rad; translation: (T, 3) mm (model parameters).
        focal: px; width, height: px; fps: frames per second. Camera: ``make_camera``.
        light_dir: (3,) unit vector towards the light, world.
        n_train: frames ``[0, n_train)`` are for training, the rest are held out.
        background: (S, S, 3) uint8, the image behind the head in every frame.
        yaw_pitch_roll: (T, 3) the head's Euler angles, rad (``rotation`` is R_y(yaw) R_x(pitch)
            R_z(roll) as axis-angle).
        events: (T, E) float, the weight of each expression event (names in ``event_names``).
    """

    frames: np.ndarray
    masks: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    jaw: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    width: int
    height: int
    fps: float
    light_dir: np.ndarray
    n_train: int
    background: np.ndarray
    yaw_pitch_roll: np.ndarray
    events: np.ndarray
    event_names: tuple[str, ...] = field(default=())

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


# ---------------------------------------------------------------------------------- trajectory


def _bump(t: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    x = np.clip((t - centre) / half_width, -1.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * x))


def _trajectory(cfg: SyntheticClipConfig, rng: np.random.Generator) -> dict[str, np.ndarray | int]:
    """Euler angles (T, 3) rad, event weights (T, E), blink (T,), translation drift (T, 3) mm,
    n_train (see the module doc)."""
    T = cfg.frames
    n_train = int(round(cfg.train_fraction * T))
    n_train = min(max(n_train, 1), T - 1)
    t = np.arange(T, dtype=np.float64)
    P = n_train / 2.0  # two yaw cycles in training; the held-out part starts at a zero crossing
    yaw = math.radians(cfg.yaw_deg) * np.sin(2 * np.pi * t / P)
    pitch = math.radians(cfg.pitch_deg) * np.sin(2 * np.pi * t / (0.7 * P) + 0.9)
    roll = math.radians(cfg.roll_deg) * np.sin(2 * np.pi * t / (1.3 * P) + 2.1)
    E = len(cfg.events)
    ev = np.zeros((T, E))
    # Training: events on yaw zero crossings (frontal head); held out: on the yaw extremes.
    # Training bumps are narrower (P/8) so the head is still near-frontal at half strength.
    for k, c in enumerate(np.arange(0.0, n_train, P / 2)):
        ev[:, k % E] = np.maximum(ev[:, k % E], _bump(t, c, P / 8) * (t < n_train))
    for k, c in enumerate(np.arange(n_train + P / 4, T, P / 2)):
        ev[:, k % E] = np.maximum(ev[:, k % E], _bump(t, c, P / 5) * (t >= n_train))
    blink = np.zeros(T)
    period = max(cfg.blink_every_s * cfg.fps, 4.0)
    c = rng.uniform(0.2, 1.0) * period
    while c < T:
        blink = np.maximum(blink, _bump(t, c, 2.5))
        c += period * rng.uniform(0.6, 1.4)
    sway = cfg.sway_mm * np.stack([np.sin(2 * np.pi * t / (1.1 * P) + 0.4),
                                   0.5 * np.sin(2 * np.pi * t / (0.9 * P) + 1.3), np.zeros(T)], 1)
    return {"ypr": np.stack([yaw, pitch, roll], 1), "events": ev, "blink": blink, "n_train": n_train,
            "sway": sway}


def heldout_novelty(clip: SyntheticClip) -> np.ndarray:
    """(T - n_train,) distance of each held-out frame's (pose, expression) to the nearest
    training frame's.

    The combination is ``(yaw / yaw amplitude, pitch / pitch amplitude, event weights...)``
    (amplitudes taken as the largest ``|yaw|``, ``|pitch|`` in the clip), Euclidean distance.
    """
    ypr = clip.yaw_pitch_roll
    amp = np.maximum(np.abs(ypr[:, :2]).max(0), 1e-9)
    f = np.concatenate([ypr[:, :2] / amp, clip.events], 1)
    tr, te = f[: clip.n_train], f[clip.n_train:]
    return np.sqrt(((te[:, None] - tr[None]) ** 2).sum(-1)).min(1)


def _euler_to_axis_angle(ypr: np.ndarray) -> Tensor:
    y, p, r = (torch.as_tensor(ypr[:, i], dtype=torch.float32) for i in range(3))
    z = torch.zeros_like(y)
    Ry = axis_angle_to_matrix(torch.stack([z, y, z], -1))
    Rx = axis_angle_to_matrix(torch.stack([p, z, z], -1))
    Rz = axis_angle_to_matrix(torch.stack([z, z, r], -1))
    return matrix_to_axis_angle(Ry @ Rx @ Rz)


def _expression_ids(model: MorphableModel, name: str) -> list[int]:
    names = model.expression_names
    if name in names:
        return [names.index(name)]
    pair = [f"{name}_L", f"{name}_R"]
    if all(n in names for n in pair):
        return [names.index(n) for n in pair]
    raise ValueError(f"expression {name!r}: expected it (or {pair}) among model {model.name!r}'s "
                     f"expression names, found neither; it has {list(names)}")


# ---------------------------------------------------------------------------------- appearance


def _random_field(points: np.ndarray, rng: np.random.Generator, wavelengths: tuple[float, float],
                  n: int = 24) -> np.ndarray:
    """Smooth random field on (N, 3) points (mm): a sum of ``n`` plane waves, unit variance."""
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    k = 2 * np.pi / rng.uniform(*wavelengths, size=n)
    ph = rng.uniform(0, 2 * np.pi, size=n)
    return np.sin(points @ (d * k[:, None]).T + ph).sum(1) * math.sqrt(2.0 / n)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _eye_frame(model: MorphableModel, verts: np.ndarray) -> tuple[np.ndarray, float]:
    """Eye midpoint (3,) mm and a length scale ``d`` (about the interocular distance), mm."""
    if "eye_left" in model.regions and "eye_right" in model.regions:
        el = verts[model.region("eye_left").numpy()].mean(0)
        er = verts[model.region("eye_right").numpy()].mean(0)
        return (el + er) / 2, float(np.linalg.norm(el - er))
    lm = verts[model.landmarks["ibug68"].vertex_ids.reshape(-1).numpy()].reshape(68, -1, 3).mean(1)
    el, er = lm[42:48].mean(0), lm[36:42].mean(0)
    return (el + er) / 2, float(np.linalg.norm(el - er))


def _skin_colors(model: MorphableModel, verts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(V, 3) per-vertex albedo: the model's (or a skin tone) with blotches, freckles, pores."""
    V = len(verts)
    base = (model.albedo.numpy().astype(np.float64) if model.albedo is not None
            else np.broadcast_to(np.array([0.80, 0.60, 0.50]), (V, 3)).copy())
    skin = np.zeros(V, bool)
    for name in ("skin", "face", "skull", "neck"):
        if name in model.regions:
            skin[model.region(name).numpy()] = True
    if not skin.any():
        skin[:] = True
    blotch = _random_field(verts, rng, (12.0, 40.0))
    red = _random_field(verts, rng, (20.0, 60.0))
    freck = _random_field(verts, rng, (2.5, 5.0), n=48)
    e, d = _eye_frame(model, verts)
    front = _smoothstep((verts[:, 2] - e[2] + 0.6 * d) / (0.6 * d))  # freckles on the face only
    freckle = (freck > 2.3) * front
    pores = rng.normal(size=V)
    tone = 1 + 0.04 * blotch + 0.025 * pores
    col = base * tone[:, None]
    col = col * (1 + 0.03 * red[:, None] * np.array([1.0, -0.3, -0.3]))
    col = col * (1 - 0.2 * freckle[:, None] * np.array([0.7, 1.0, 1.2]))
    return np.where(skin[:, None], np.clip(col, 0, 1), base)


def _hair_shell(model: MorphableModel, verts: np.ndarray, cfg: SyntheticClipConfig,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Hair: (Vh, 3) rest-frame vertices mm and (Fh, 3) int64 faces into them.

    The scalp is the skin (skull region where the model has one) above a hairline that runs
    across the forehead top (1.15 d above the eyes, ``d`` the interocular distance), over the
    temples (0.55 d) and down the back of the head (1.3 d below the eyes), ``d`` ~ 60 mm.
    """
    faces = model.faces.numpy().astype(np.int64)
    allowed = np.zeros(len(verts), bool)
    names = [n for n in ("skull", "skin") if n in model.regions]
    if names:
        allowed[:] = True
        for n in names:
            m = np.zeros(len(verts), bool)
            m[model.region(n).numpy()] = True
            allowed &= m
    else:
        allowed[:] = True
    for n in ("eyes", "eye_left", "eye_right", "mouth_interior", "teeth", "ear_left", "ear_right", "face"):
        if n in model.regions:
            allowed[model.region(n).numpy()] = False
    e, d = _eye_frame(model, verts)
    X, Y, Z = ((verts - e) / d).T
    # Hairline height as a function of depth (front of the head to the back), in units of d.
    line = np.interp(Z, [-1.6, -1.0, -0.5, 0.0, 0.4], [-1.3, -0.4, 0.55, 1.0, 1.15])
    w = _smoothstep((Y - line) / 0.35) * allowed
    keep = (w[faces] > 0).all(1)
    hf = faces[keep]
    used = np.unique(hf)
    remap = np.full(len(verts), -1, np.int64)
    remap[used] = np.arange(len(used))
    n = vertex_normals(torch.as_tensor(verts, dtype=torch.float32)[None], model.faces)[0].numpy()
    vary = 1 + 0.3 * _random_field(verts[used], rng, (40.0, 120.0), n=12)
    thick = cfg.hair_thickness_mm * np.clip(vary, 0.4, 1.8) * (0.12 + 0.88 * w[used])
    return verts[used] + n[used] * thick[:, None], remap[hf]


def _hair_albedo(canon: Tensor, centre: np.ndarray, color: tuple[float, float, float], seed: int) -> Tensor:
    """(..., 3) per-pixel hair albedo from (..., 3) rest-frame positions: strands radiating from
    the crown (stripes in azimuth around the vertical axis through ``centre``)."""
    g = torch.Generator().manual_seed(seed)
    q = canon - torch.as_tensor(centre, dtype=canon.dtype)
    phi = torch.atan2(q[..., 0], q[..., 2])
    polar = torch.atan2(torch.linalg.norm(q[..., [0, 2]], dim=-1), q[..., 1])
    k = torch.randint(40, 260, (10,), generator=g).to(canon.dtype)
    ph = torch.rand(10, generator=g, dtype=canon.dtype) * 2 * math.pi
    wav = torch.rand(10, generator=g, dtype=canon.dtype) * 3
    s = torch.sin(phi[..., None] * k + wav * torch.sin(3 * polar[..., None]) + ph).sum(-1) * math.sqrt(2 / 10)
    shade = 1 + 0.45 * s.clamp(-1.5, 1.5)
    return torch.as_tensor(color, dtype=canon.dtype) * shade[..., None]


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float in [0.2, 0.85]: a vertical gradient and a few wide soft blobs."""
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    top, bottom = rng.uniform(0.35, 0.75, 3), rng.uniform(0.25, 0.6, 3)
    img = top * (1 - y[..., None]) + bottom * y[..., None]
    for _ in range(3):
        c, r = rng.uniform(0, 1, 2), rng.uniform(0.2, 0.5)
        col = rng.uniform(-0.15, 0.15, 3)
        img = img + col * np.exp(-((x - c[0]) ** 2 + (y - c[1]) ** 2) / (2 * r * r))[..., None]
    return np.clip(img, 0.2, 0.85)


# ---------------------------------------------------------------------------------- rendering


def _shade(albedo: Tensor, normals: Tensor, view: Tensor, light: Tensor, ks: Tensor, shin: Tensor,
           ambient: float, diffuse: float) -> Tensor:
    """Ambient + Lambert + Blinn-Phong: albedo, normals, view (..., 3); ks, shin (..., 1)."""
    ndl = (normals * light).sum(-1, keepdim=True)
    h = torch.nn.functional.normalize(light + view, dim=-1)
    ndh = (normals * h).sum(-1, keepdim=True).clamp(min=0)
    spec = ks * ndh.pow(shin) * (ndl > 0)
    return albedo * (ambient + diffuse * ndl.clamp(min=0)) + spec


def synthetic_clip(model: MorphableModel, cfg: SyntheticClipConfig = SyntheticClipConfig()) -> SyntheticClip:
    """Render a clip of ``model`` with skin texture, hair and world-fixed lighting.

    Args:
        model: a morphable model with ``ibug68`` landmarks (e.g. ``face3d.load_model("builtin")``
            or ``"character"``); models without expression names for the events raise.
        cfg: :class:`SyntheticClipConfig`.

    Returns:
        :class:`SyntheticClip` (see the module docstring for the held-out design).

    Example::

        >>> import face3d
        >>> clip = synthetic_clip(face3d.load_model("character"), SyntheticClipConfig(frames=4, size=32))
        >>> clip.frames.shape, clip.n_train
        ((4, 32, 32, 3), 3)
    """
    rng = np.random.default_rng(cfg.seed)
    T, S = cfg.frames, cfg.size
    traj = _trajectory(cfg, rng)
    n_train = int(traj["n_train"])

    identity = torch.as_tensor(rng.normal(size=(1, model.n_identity)), dtype=torch.float32)
    identity = identity * cfg.identity_scale * model.identity_std.reshape(1, -1).to(torch.float32)
    expression = np.zeros((T, model.n_expression))
    for j, name in enumerate(cfg.events):
        for bs, wgt in EVENTS[name].items():
            for i in _expression_ids(model, bs):
                expression[:, i] = np.maximum(expression[:, i], wgt * traj["events"][:, j])
    for i in _expression_ids(model, "eyeBlink_L") + _expression_ids(model, "eyeBlink_R"):
        expression[:, i] = np.maximum(expression[:, i], traj["blink"])
    jaw = np.zeros((T, 3))
    if "jaw" in cfg.events:
        jaw[:, 0] = JAW_OPEN_RAD * traj["events"][:, cfg.events.index("jaw")]
    rotation = _euler_to_axis_angle(traj["ypr"])

    with torch.no_grad():
        rest = model(identity=identity).vertices[0].numpy().astype(np.float64)
        skull = rest[model.region("skull").numpy()] if "skull" in model.regions else rest
        lo, hi = skull.min(0), skull.max(0)
        centre = (lo + hi) / 2
        focal = float(cfg.focal) if cfg.focal is not None else 2.0 * S
        dist = float(cfg.distance) if cfg.distance is not None else focal * (hi - lo)[1] / (cfg.fill * S)
        translation = np.array([-centre[0], -centre[1], -dist - centre[2]])[None] + traj["sway"]

        albedo_v = _skin_colors(model, rest, rng)
        hair_v, hair_f = _hair_shell(model, rest, cfg, rng)
        V, Vh = model.n_vertices, len(hair_v)
        faces = torch.cat([model.faces.to(torch.int64), torch.as_tensor(hair_f) + V]).to(torch.int32)
        is_hair = np.concatenate([np.zeros(V), np.ones(Vh)])
        colors = np.concatenate([albedo_v, np.broadcast_to(np.asarray(cfg.hair_color), (Vh, 3))])
        canon = np.concatenate([rest, hair_v])
        attrs = torch.as_tensor(np.concatenate([canon, is_hair[:, None]], 1), dtype=torch.float32)
        colors_t = torch.as_tensor(colors, dtype=torch.float32)
        crown = np.array([centre[0], centre[1], centre[2] - 0.1 * (hi - lo)[2]])

        light = torch.nn.functional.normalize(torch.tensor(cfg.light_dir, dtype=torch.float32), dim=0)
        bg = torch.as_tensor(_background(S, rng), dtype=torch.float32)
        renderer = Renderer(backend=cfg.backend)
        frames = np.empty((T, S, S, 3), np.uint8)
        masks = np.empty((T, S, S), bool)
        hair_rest = torch.as_tensor(hair_v, dtype=torch.float32)
        chunk = 8  # frames per render call: bounds the rasterizer's memory at 256^2
        for s in range(0, T, chunk):
            sl = slice(s, min(T, s + chunk))
            B = sl.stop - sl.start
            out = model(identity=identity.expand(B, -1),
                        expression=torch.as_tensor(expression[sl], dtype=torch.float32),
                        jaw=torch.as_tensor(jaw[sl], dtype=torch.float32), rotation=rotation[sl],
                        translation=torch.as_tensor(translation[sl], dtype=torch.float32))
            A = out.skull_transform
            hair = hair_rest @ A[:, :3, :3].transpose(1, 2) + A[:, None, :3, 3]
            verts = torch.cat([out.vertices, hair], 1)
            cam = make_camera(torch.full((B,), focal), S, S)
            ro = renderer(verts, faces, cam, vertex_colors=colors_t, antialias=False)
            extra, _ = interpolate(attrs[None].expand(B, -1, -1).contiguous(), ro.rast, faces)
            cov = ro.rast[..., 3:4] > 0
            hair_px = extra[..., 3:4].clamp(0, 1)
            albedo = ro.rgb * (1 - hair_px) + _hair_albedo(extra[..., :3], crown, cfg.hair_color, cfg.seed) * hair_px
            # World position of each pixel (camera at the origin, make_camera's axes).
            j = torch.arange(S, dtype=torch.float32)
            xn = ((j - (S - 1) / 2) / focal)[None, None, :].expand(B, S, S)
            yn = ((j - (S - 1) / 2) / focal)[None, :, None].expand(B, S, S)
            z = ro.depth
            p = torch.stack([xn * z, -yn * z, -z], -1)
            view = torch.nn.functional.normalize(-p, dim=-1, eps=1e-9)
            ks = cfg.specular * (1 - hair_px) + cfg.hair_specular * hair_px
            shin = cfg.shininess * (1 - hair_px) + cfg.hair_shininess * hair_px
            rgb = _shade(albedo, ro.normals, view, light, ks, shin, cfg.ambient, cfg.diffuse) * cov
            m = cov.to(rgb.dtype)
            rgba = antialias(torch.cat([rgb.clamp(0, 1), m], -1), ro.rast, cam.to_clip(verts), faces,
                             backend=cfg.backend)
            img = rgba[..., :3] + (1 - rgba[..., 3:4]) * bg
            frames[sl] = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()
            masks[sl] = cov[..., 0].numpy()

    return SyntheticClip(
        frames=frames, masks=masks, identity=identity[0].numpy(), expression=expression.astype(np.float32),
        jaw=jaw.astype(np.float32), rotation=rotation.numpy(), translation=translation.astype(np.float32),
        focal=focal, width=S, height=S, fps=float(cfg.fps), light_dir=light.numpy(), n_train=n_train,
        background=(bg.numpy() * 255 + 0.5).astype(np.uint8), yaw_pitch_roll=traj["ypr"].astype(np.float32),
        events=traj["events"].astype(np.float32), event_names=tuple(cfg.events))


def write_clip(clip: SyntheticClip, folder: str | os.PathLike) -> Path:
    """Write ``folder/frames/000000.png ...``, ``folder/truth.npz`` (every array and scalar of
    the clip except the frames) and ``folder/clip.mp4``.

    The folder appears complete or not at all: everything is written to a temporary folder next
    to it, which is then renamed (an existing ``folder`` is replaced). Returns the folder.
    """
    from PIL import Image

    from audio2exp.video import write_video

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        (tmp / "frames").mkdir()
        for i, f in enumerate(clip.frames):
            Image.fromarray(f).save(tmp / "frames" / f"{i:06d}.png")
        truth = {f.name: np.asarray(getattr(clip, f.name)) for f in fields(clip) if f.name != "frames"}
        truth["event_names"] = np.asarray(clip.event_names, dtype=str)
        np.savez_compressed(tmp / "truth.npz", **truth)
        write_video(tmp / "clip.mp4", clip.frames, fps=clip.fps)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
