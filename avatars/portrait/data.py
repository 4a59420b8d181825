"""From a video (or a folder of frames) of one person to a portrait training set, in one call.

:func:`prepare` runs ``face3d track`` (or takes a given track), crops a fixed square around the
head for the whole clip (so the camera stays a pinhole camera, with the crop folded into its
intrinsics), resizes it, and makes foreground masks offline: the tracked mesh gives a sure
foreground (its head triangles, eroded) and a sure background (outside the projected shell
around it), and colour models decide the band between (:mod:`avatars.portrait.masks`).

Layout written under ``DIR``: ``track/track.npz`` (when it tracked), ``data/frames.npy``
(T, S, S, 3) uint8, ``data/masks.npy`` (T, S, S) float16, ``data/params.npz`` (identity,
expression, jaw, rotation, translation, K at S px, n_train) and ``data/meta.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch


@dataclass
class PortraitData:
    """A tracked clip at one square resolution ``S``.

    Attributes:
        frames: (T, S, S, 3) uint8. masks: (T, S, S) float32 foreground in [0, 1].
        identity: (n_identity,); expression: (T, n_expression); jaw, rotation: (T, 3) rad;
        translation: (T, 3) mm. K: (3, 3) intrinsics at S px (camera convention of
        :mod:`face3d.reconstruct.camera`). n_train: frames [0, n_train) train, the rest are
        held out. fps: frame rate. model: the model spec the track used. source: where from.
    """

    frames: np.ndarray
    masks: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    jaw: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    K: np.ndarray
    n_train: int
    fps: float = 25.0
    model: str = "builtin"
    source: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> int:
        return int(self.frames.shape[1])

    def resized(self, size: int) -> "PortraitData":
        """The same clip at ``size`` px (frames area-resampled, intrinsics scaled)."""
        if size == self.size:
            return self
        from PIL import Image

        s = size / self.size
        fr = np.stack([np.asarray(Image.fromarray(f).resize((size, size), Image.BOX if s < 1 else Image.BICUBIC))
                       for f in self.frames])
        ms = np.stack([np.asarray(Image.fromarray(m.astype(np.float32)).resize((size, size), Image.BILINEAR))
                       for m in self.masks]).clip(0, 1)
        from face3d.render.camera import scale_intrinsics

        return replace(self, frames=fr, masks=ms.astype(np.float32), K=scale_intrinsics(self.K, s, s))

    def camera(self, size: int | None = None):
        """A 1-camera :class:`face3d.render.Camera` at ``size`` px (default the data's)."""
        from face3d.reconstruct.camera import WORLD_TO_CAMERA
        from face3d.render import Camera

        S = size or self.size
        cam = Camera(K=torch.tensor(self.K, dtype=torch.float32)[None], R=WORLD_TO_CAMERA[None].clone(),
                     t=torch.zeros(1, 3), width=self.size, height=self.size, near=10.0, far=5000.0)
        return cam if S == self.size else cam.resized(S, S)

    def params(self, i: int) -> dict[str, torch.Tensor]:
        """Frame ``i``'s expression (n_exp,), jaw, rotation, translation (3,) as float tensors."""
        return {k: torch.tensor(getattr(self, k)[i], dtype=torch.float32)
                for k in ("expression", "jaw", "rotation", "translation")}

    def save(self, folder: str | Path) -> Path:
        """Write ``folder/frames.npy``, ``masks.npy``, ``params.npz``, ``meta.json`` (each atomic)."""
        from face3d.fileio import atomic_write_bytes
        from face3d.reconstruct.outputs import write_json, write_npz
        import io

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, arr in (("frames.npy", self.frames), ("masks.npy", self.masks.astype(np.float16))):
            buf = io.BytesIO()
            np.save(buf, arr)
            atomic_write_bytes(folder / name, buf.getvalue())
        write_npz(folder / "params.npz", {k: getattr(self, k) for k in
                                          ("identity", "expression", "jaw", "rotation", "translation", "K")}
                  | {"n_train": np.int64(self.n_train)})
        write_json(folder / "meta.json", {"fps": self.fps, "model": self.model, "source": self.source,
                                          "frames": self.n_frames, "size": self.size, "n_train": self.n_train})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "PortraitData":
        folder = Path(folder)
        if (folder / "data").is_dir():
            folder = folder / "data"
        need = ("frames.npy", "masks.npy", "params.npz", "meta.json")
        missing = [n for n in need if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"portrait data: expected {', '.join(need)} in {folder}, missing {', '.join(missing)}")
        meta = json.loads((folder / "meta.json").read_text())
        p = np.load(folder / "params.npz")
        return cls(frames=np.load(folder / "frames.npy"), masks=np.load(folder / "masks.npy").astype(np.float32),
                   identity=p["identity"], expression=p["expression"], jaw=p["jaw"], rotation=p["rotation"],
                   translation=p["translation"], K=p["K"], n_train=int(p["n_train"]), fps=float(meta["fps"]),
                   model=meta["model"], source=meta["source"])


def load_track(track_dir: str | Path, model, n_frames: int, width: int, height: int) -> dict[str, np.ndarray]:
    """A ``face3d track`` output folder (or its ``track.npz``), checked against the video and model."""
    p = Path(track_dir)
    if p.is_dir():
        p = p / "track.npz"
    if not p.is_file():
        raise FileNotFoundError(f"track: expected a face3d track folder with track.npz, got {track_dir}")
    t = dict(np.load(p))
    need = ("identity", "expression", "jaw", "rotation", "translation", "focal", "width", "height")
    missing = [k for k in need if k not in t]
    if missing:
        raise ValueError(f"track {p}: missing {', '.join(missing)}; expected the output of `face3d track`")
    if t["identity"].shape != (model.n_identity,) or t["expression"].shape[1:] != (model.n_expression,):
        raise ValueError(f"track {p} was made with a model of {t['identity'].shape[-1]} identity / "
                         f"{t['expression'].shape[-1]} expression coefficients, but the model {model.name!r} has "
                         f"{model.n_identity} / {model.n_expression}; track with the same --model")
    T = t["expression"].shape[0]
    if T != n_frames:
        raise ValueError(f"track {p} has {T} frames but the video has {n_frames}; track the same video")
    if (int(t["width"]), int(t["height"])) != (width, height):
        raise ValueError(f"track {p} is for {int(t['width'])}x{int(t['height'])} frames but the video is "
                         f"{width}x{height}")
    return t


def crop_box(landmarks: np.ndarray, width: int, height: int, scale: float = 2.1) -> tuple[int, int, int]:
    """A fixed square ``(x0, y0, side)`` px holding the head in every frame.

    From the union of the per-frame landmark boxes (T, 68, 2): ``scale`` times its larger side,
    centred a little above the landmarks' centre (forehead and hair), kept inside the image.
    """
    lm = landmarks.reshape(-1, 2)
    lo, hi = np.nanmin(lm, 0), np.nanmax(lm, 0)
    face = float(max(hi - lo))
    side = int(round(min(scale * face, width, height)))
    cx = (lo[0] + hi[0]) / 2
    cy = (lo[1] + hi[1]) / 2 - 0.12 * side
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return x0, y0, side


def head_masks(model, vertices: torch.Tensor, camera, shell_mm: float, erode_px: int, dilate_px: int):
    """Trimap from the tracked mesh: ``(inside, outside)`` (B, H, W) bool numpy.

    ``inside``: pixels of the head's triangles (every triangle with a vertex outside the model's
    ``neck`` region, where it has one, so the mouth interior and eyes count), eroded;
    ``outside``: beyond the mesh inflated by ``shell_mm``, dilated by ``dilate_px``.
    """
    from scipy import ndimage

    from face3d.geometry.normals import vertex_normals
    from face3d.render import Renderer

    r = Renderer(backend="torch")
    neck = model.region_mask("neck", missing_ok=True)
    head_tri = ~neck[model.faces.long()].all(1)
    with torch.no_grad():
        out = r(vertices, model.faces, camera, antialias=False)
        n = vertex_normals(vertices, model.faces)
        shell = r(vertices + shell_mm * n, model.faces, camera, antialias=False)
    tid = out.triangle_id
    inside = ((tid >= 0) & head_tri[tid.clamp_min(0)]).numpy()
    cover = (shell.alpha[..., 0] > 0).numpy()
    ins, outs = [], []
    for a, c in zip(inside, cover):
        ins.append(ndimage.binary_erosion(a, iterations=erode_px) if erode_px else a)
        outs.append(~ndimage.binary_dilation(c, iterations=dilate_px))
    return np.stack(ins), np.stack(outs)


def prepare(source: str | Path, out_dir: str | Path, model_spec: str = "builtin", track_dir: str | Path | None = None,
            size: int = 256, max_frames: int | None = None, train_fraction: float = 0.8, shell_mm: float = 18.0,
            fps: float | None = None, progress: Callable[[str], None] | None = None) -> PortraitData:
    """Video or frame folder -> :class:`PortraitData` saved in ``out_dir/data`` (see the module doc).

    Reuses ``out_dir/data`` if it was made from the same source and settings.
    """
    import face3d
    from face3d.reconstruct.camera import WORLD_TO_CAMERA
    from face3d.reconstruct.track import TrackConfig, read_frames, track, write_track
    from face3d.render import Camera

    from avatars.portrait.masks import foreground_masks

    out_dir = Path(out_dir)
    say = progress or (lambda m: None)
    data_dir = out_dir / "data"
    key = {"source": str(Path(source).resolve()), "model": model_spec, "size": size, "max_frames": max_frames,
           "train_fraction": train_fraction, "track": str(Path(track_dir).resolve()) if track_dir else None}
    if (data_dir / "meta.json").is_file():
        meta = json.loads((data_dir / "meta.json").read_text())
        if meta.get("key") == key:
            say(f"reusing the prepared data in {data_dir}")
            return PortraitData.load(data_dir)
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction: expected a fraction in (0, 1), got {train_fraction}")
    t0 = time.time()
    model = face3d.load_model(model_spec)
    frames = read_frames(source, max_frames=max_frames)
    if len(frames) < 2:
        raise ValueError(f"{source}: expected a video of at least 2 frames, got {len(frames)}")
    H, W = frames[0].shape[:2]
    if fps is None:
        fps = _video_fps(source)
    if track_dir is not None:
        t = load_track(track_dir, model, len(frames), W, H)
        lm = t.get("landmarks2d_fitted")
        if lm is None:
            raise ValueError(f"track {track_dir}: expected landmarks2d_fitted (a face3d track output)")
        ident, exp, jaw, rot, tr, focal = (t["identity"], t["expression"], t["jaw"], t["rotation"],
                                           t["translation"], float(t["focal"]))
        cx, cy = (W - 1) / 2, (H - 1) / 2
        if "K" in t:
            cx, cy = float(t["K"][0, 2]), float(t["K"][1, 2])
    else:
        say(f"tracking {len(frames)} frames of {W}x{H} with face3d track")
        try:
            res = track(model, frames, TrackConfig(), progress=say)
        except LookupError as e:
            raise ValueError(f"{source}: no face found to build a portrait from ({e})") from None
        if res.n_detected < max(2, 0.5 * res.n_frames):
            raise ValueError(f"{source}: a face was detected in only {res.n_detected} of {res.n_frames} frames; "
                             "a portrait needs a face in most frames")
        write_track(res, out_dir / "track")
        ident, exp, jaw, rot, tr, focal, lm = (res.identity, res.expression, res.jaw, res.rotation, res.translation,
                                               res.focal, res.landmarks2d)
        cx, cy = (W - 1) / 2, (H - 1) / 2
    x0, y0, side = crop_box(np.asarray(lm), W, H)
    s = size / side
    from PIL import Image

    crops = np.stack([np.asarray(Image.fromarray(f[y0:y0 + side, x0:x0 + side]).resize(
        (size, size), Image.BOX if s < 1 else Image.BICUBIC)) for f in frames])
    K = np.array([[focal * s, 0, (cx - x0 + 0.5) * s - 0.5], [0, focal * s, (cy - y0 + 0.5) * s - 0.5], [0, 0, 1]])
    say(f"cropped {side}x{side} px at ({x0}, {y0}) -> {size}x{size}; making foreground masks")
    cam = Camera(K=torch.tensor(K, dtype=torch.float32)[None], R=WORLD_TO_CAMERA[None].clone(), t=torch.zeros(1, 3),
                 width=size, height=size, near=10.0, far=5000.0)
    masks = []
    T = len(frames)
    for a in range(0, T, 16):
        b = min(T, a + 16)
        with torch.no_grad():
            v = model(identity=torch.tensor(ident, dtype=torch.float32)[None].expand(b - a, -1),
                      expression=torch.tensor(exp[a:b], dtype=torch.float32), jaw=torch.tensor(jaw[a:b], dtype=torch.float32),
                      rotation=torch.tensor(rot[a:b], dtype=torch.float32),
                      translation=torch.tensor(tr[a:b], dtype=torch.float32)).vertices
        e = max(1, size // 64)
        inside, outside = head_masks(model, v, cam, shell_mm, erode_px=e, dilate_px=e)
        fg = foreground_masks(crops[a:b], inside, outside)
        from scipy import ndimage

        for j in range(len(fg)):  # the mouth and eyes can look like background: no holes in a head
            fg[j][ndimage.binary_fill_holes(fg[j] > 0.5) & (fg[j] <= 0.5)] = 1.0
        masks.append(fg)
    data = PortraitData(frames=crops, masks=np.concatenate(masks).astype(np.float32), identity=np.asarray(ident),
                        expression=np.asarray(exp), jaw=np.asarray(jaw), rotation=np.asarray(rot),
                        translation=np.asarray(tr), K=K, n_train=int(round(train_fraction * T)), fps=float(fps),
                        model=model_spec, source=str(source))
    data.save(data_dir)
    from face3d.reconstruct.outputs import write_json

    write_json(data_dir / "meta.json", {**json.loads((data_dir / "meta.json").read_text()), "key": key,
                                        "crop": [x0, y0, side], "seconds": time.time() - t0})
    say(f"prepared {T} frames in {time.time() - t0:.1f} s ({data.n_train} for training)")
    return data


def _video_fps(source) -> float:
    p = Path(source)
    if p.is_file():
        try:
            import imageio.v3 as iio

            f = iio.immeta(p).get("fps")
            if f:
                return float(f)
        except Exception:  # noqa: BLE001 - metadata is optional; fall back to 25 fps
            pass
    return 25.0


def background_image(data: PortraitData, frames: slice | None = None) -> np.ndarray:
    """(S, S, 3) float32 in [0, 1]: per-pixel median of the frames' pixels whose mask < 0.5
    (pixels never seen as background take the median over all frames)."""
    sl = frames or slice(0, data.n_train)
    f = data.frames[sl].astype(np.float32) / 255
    m = data.masks[sl] < 0.5
    x = np.where(m[..., None], f, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            bg = np.nanmedian(x, 0)
    fill = np.median(f, 0)
    return np.where(np.isfinite(bg), bg, fill).astype(np.float32)

