"""Build the bundled head (``assets/builtin_head.npz``) from an ICT-FaceKit ``FaceXModel`` folder.

Run ``face3d build-head /path/to/FaceXModel`` (or ``python -m face3d.models.ict_build``). The
folder is the one users get by cloning ICT-FaceKit (MIT licence; the notice ships as
``assets/ICT-FaceKit-LICENSE``). Deterministic: the same folder gives a byte-identical file.

What is kept, from :func:`face3d.models.ict.load_ict` (mm, toolkit frame, jaw joint and jaw pose
corrective measured from ``jawOpen``): the skin (face, head and neck), the mouth socket, the eye
sockets, gums, tongue and teeth, and both eyeballs (sclera and iris as separate regions), i.e.
ICT vertices 0-24590 in ICT's order, so vertex ``i`` of the bundled head is ICT's vertex ``i``.
Dropped: the meshes only a game-engine shader uses (lacrimal fluid, eye blend, eye occlusion,
eyelash strips), which have no place in a plain rasterizer's render.

Precision and modes were chosen by measurement (``docs/performance.md``, "Bundled head"): all
100 identity modes (truncating to 60 leaves 0.64 mm mean skin error on random identities, to 80
0.39 mm) with both bases stored as int16 multiples of 2^-9 mm (largest rounding error 0.001 mm
per mode): 8.8 MB of identity bases where float16 would take 13.5 MB; 11.7 MB in all.

The albedo is painted procedurally (:func:`paint_albedo`): ICT-FaceKit ships no skin texture.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from face3d.models.base import LandmarkSet, MorphableModel
from face3d.models.ict import ICT_RANGES, IRIS_RADIUS_MM, load_ict

QUANTUM_MM = 2.0**-9
KEEP_RANGES = ("face_area", "head_and_neck", "mouth_socket", "eye_socket_left", "eye_socket_right",
               "gums_and_tongue", "teeth", "eyeball_left", "eyeball_right")
LICENSE_NAME = "ICT-FaceKit-LICENSE"


def subset_model(model: MorphableModel, keep: np.ndarray, name: str) -> MorphableModel:
    """The model restricted to the vertices ``keep`` (V,) bool, in their original order.

    Faces (and their UV corners) with a dropped vertex go; regions and landmarks are re-indexed,
    regions left empty are dropped. Raises ``ValueError`` if a landmark or a joint-regressor
    weight needs a dropped vertex.
    """
    keep = np.asarray(keep, bool)
    new_index = np.full(model.n_vertices, -1, np.int64)
    new_index[keep] = np.arange(int(keep.sum()))
    faces = model.faces.numpy()
    fk = keep[faces].all(1)
    uv_faces = model.uv_faces.numpy()[fk]
    used_uv, uv_inv = np.unique(uv_faces.reshape(-1), return_inverse=True)
    jr = model.joint_regressor.numpy()
    if np.abs(jr[:, ~keep]).max(initial=0) > 0:
        raise ValueError("joint regressor uses vertices that would be dropped")
    landmarks = {}
    for k, lm in model.landmarks.items():
        ids = new_index[lm.vertex_ids.numpy()]
        if (ids < 0).any():
            raise ValueError(f"landmarks[{k!r}] sit on vertices that would be dropped")
        landmarks[k] = LandmarkSet(vertex_ids=torch.as_tensor(ids), weights=lm.weights.clone())
    regions = {k: new_index[r.numpy()][keep[r.numpy()]] for k, r in model.regions.items()}
    pb = None
    if model.pose_basis is not None:
        pb = model.pose_basis.numpy().reshape(36, -1, 3)[:, keep].reshape(36, -1)
    return MorphableModel(
        name=name,
        template=model.template.numpy()[keep],
        faces=new_index[faces[fk]],
        uvs=model.uvs.numpy()[used_uv],
        uv_faces=uv_inv.reshape(-1, 3),
        identity_basis=model.identity_basis.numpy()[keep],
        expression_basis=model.expression_basis.numpy()[keep],
        expression_names=model.expression_names,
        identity_std=model.identity_std.numpy(),
        expression_std=model.expression_std.numpy(),
        joint_regressor=jr[:, keep],
        skin_weights=model.skin_weights.numpy()[keep],
        pose_basis=pb,
        landmarks=landmarks,
        regions={k: v for k, v in regions.items() if len(v)},
        source=model.source,
    )


def _soft_polygon(p2: np.ndarray, poly: np.ndarray, feather: float) -> np.ndarray:
    """(N,) in [0, 1]: 1 inside the closed 2-D polygon ``poly`` (M, 2), fading to 0 over
    ``feather`` mm outside it (even-odd rule for inside, distance to the edges for the fade)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    x, y = p2[:, :1], p2[:, 1:]
    crosses = ((a[:, 1] > y) != (b[:, 1] > y)) & (
        x < (b[:, 0] - a[:, 0]) * (y - a[:, 1]) / np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1]) + a[:, 0])
    inside = crosses.sum(1) % 2 == 1
    ab = b - a
    t = np.clip(((p2[:, None] - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0, 1)
    dist = np.linalg.norm(p2[:, None] - (a + t[..., None] * ab), axis=-1).min(1)
    return np.where(inside, 1.0, np.clip(1 - dist / feather, 0, 1))


def _blob(p: np.ndarray, c, r: float) -> np.ndarray:
    return np.exp(-((p - np.asarray(c, float)) ** 2).sum(1) / (2 * r * r))


def paint_albedo(model: MorphableModel) -> np.ndarray:
    """(V, 3) float32 display colours in [0, 1] for the ICT-topology head, painted from geometry.

    Skin: one light-medium tone, warmer on the cheeks, nose and ears, a little darker and cooler
    on the jaw, neck and scalp. Lips: inside the outer-lip landmark polygon (48-59, seen from the
    front), feathered over 2 mm. Brows: a band 2.5-4 mm around the brow landmarks (17-26).
    Eyes: sclera off-white; the iris by distance from each eye's forward axis on both eyeball
    meshes (pupil < 1.9 mm, iris to :data:`~face3d.models.ict.IRIS_RADIUS_MM` with a darker
    limbal ring). Mouth socket dark red, gums and tongue pink, teeth ivory,
    eye sockets (the caruncle and lid rims) pink. Symmetric by construction (every rule uses
    |x|) and deterministic.
    """
    v = model.template.numpy().astype(np.float64)
    V = len(v)
    lm = model.landmark_positions(model.template[None])[0].numpy().astype(np.float64)
    skin_rgb = np.array([0.84, 0.64, 0.53])
    col = np.tile(skin_rgb, (V, 1))
    ax = v.copy()
    ax[:, 0] = np.abs(ax[:, 0])
    # warm patches: cheeks, nose tip, ears; cooler jaw/neck
    cheek = lm[[2, 3, 31, 48]].mean(0)
    cheek[0] = abs(cheek[0]) + 8
    warm = 0.7 * _blob(ax, cheek, 16.0) + 0.6 * _blob(ax, lm[30], 9.0)
    ear = np.array([abs(lm[0, 0]) + 8, lm[0, 1] - 5, lm[0, 2] - 25])
    warm += 0.5 * _blob(ax, ear, 14.0)
    col += warm[:, None] * (np.array([0.86, 0.52, 0.45]) - skin_rgb) * 0.6
    below_chin = np.clip((lm[8, 1] - v[:, 1]) / 30.0, 0, 1)
    col += below_chin[:, None] * (np.array([0.76, 0.58, 0.50]) - skin_rgb) * 0.7
    scalp = np.clip((v[:, 1] - (lm[19, 1] + 35)) / 30.0, 0, 1) + np.clip((lm[0, 2] - 20 - v[:, 2]) / 40.0, 0, 1)
    col += np.clip(scalp, 0, 1)[:, None] * (np.array([0.78, 0.60, 0.52]) - skin_rgb) * 0.6

    front = v[:, 2] > lm[[48, 54], 2].min() - 8
    skin_ids = model.region("skin").numpy()
    on_skin = np.zeros(V, bool)
    on_skin[skin_ids] = True
    lips = _soft_polygon(v[:, :2], lm[48:60, :2], 2.0) * (front & on_skin)
    col = col * (1 - lips[:, None]) + lips[:, None] * np.array([0.72, 0.40, 0.40])
    brow_front = on_skin & (v[:, 2] > lm[17:27, 2].min() - 12)
    brow = np.zeros(V)
    for k in range(17, 26):
        if k == 21:
            continue  # the two brows are separate polylines (17-21, 22-26)
        a, b = lm[k], lm[k + 1]
        ab = b - a
        t = np.clip(((v - a) @ ab) / (ab @ ab), 0, 1)
        d = np.linalg.norm(v - (a + t[:, None] * ab), axis=1)
        half = 4.0 if k in (17, 24, 25) else 4.5  # a little fuller over the eye than at the tails
        brow = np.maximum(brow, np.clip((half - (d - 1.0)) / half, 0, 1) ** 0.5 * brow_front)
    brow_rgb = np.array([0.33, 0.24, 0.19])
    col = col * (1 - 0.75 * brow[:, None]) + 0.75 * brow[:, None] * brow_rgb

    def paint(region: str, rgb) -> None:
        if region in model.regions:
            col[model.region(region).numpy()] = rgb

    paint("mouth_interior", (0.42, 0.16, 0.16))
    lip_rgb = np.array([0.72, 0.40, 0.40])
    if "mouth_interior" in model.regions:
        mi = model.region("mouth_interior").numpy()
        depth = np.clip((lm[62, 2] - v[mi, 2]) / 45.0, 0, 1)[:, None]
        col[mi] = np.array([0.55, 0.24, 0.24]) * (1 - depth) + np.array([0.18, 0.06, 0.06]) * depth
        # where the socket meets the lips it shows through the lip corners at grazing views:
        # within 5 mm of the lips' surface it takes their colour, so that shows as lip, not a dark dot
        from scipy.spatial import cKDTree

        near, _ = cKDTree(v[model.region("lips").numpy()]).query(v[mi])
        rim = np.clip(1 - near / 5.0, 0, 1)[:, None]
        col[mi] = col[mi] * (1 - rim) + lip_rgb * rim
    paint("eye_sockets", (0.80, 0.52, 0.50))  # caruncle and lid rims
    paint("ict_gums_and_tongue", (0.78, 0.42, 0.42))
    paint("teeth", (0.93, 0.90, 0.82))
    for side in ("left", "right"):
        # ICT's outer eyeball is the sclera and the (transparent) cornea over the iris, so the
        # iris is painted on it and on the inner ball alike, by distance from the eye's forward
        # axis: pupil, iris (lighter to the rim), limbal ring, sclera.
        ids = np.concatenate([model.region(r).numpy() for r in (f"sclera_{side}", f"iris_{side}") if r in model.regions])
        if not len(ids):
            continue
        p = v[ids]
        c = v[model.region(f"sclera_{side}").numpy()].mean(0) if f"sclera_{side}" in model.regions else p.mean(0)
        r = np.linalg.norm(p[:, :2] - c[:2], axis=1)
        front = p[:, 2] > c[2]
        colours = np.tile(np.array([0.93, 0.91, 0.88]), (len(ids), 1))
        iris = front & (r < IRIS_RADIUS_MM)
        colours[iris] = np.array([0.36, 0.26, 0.17]) * (1 + 0.3 * np.clip((r[iris, None] - 2.0) / 3.0, 0, 1))
        colours[front & (r >= IRIS_RADIUS_MM - 0.8) & (r < IRIS_RADIUS_MM)] = (0.22, 0.16, 0.12)
        colours[front & (r < 1.9)] = (0.03, 0.03, 0.03)
        col[ids] = colours
    return np.clip(col, 0, 1).astype(np.float32)


def build_bundled_head(folder: str | Path) -> MorphableModel:
    """The bundled head from an ICT-FaceKit ``FaceXModel`` folder (see the module docstring)."""
    full = load_ict(folder, name="builtin")
    if full.n_vertices != ICT_RANGES["eyelashes"][1] + 1:
        raise ValueError(f"{folder}: expected the full ICT-FaceKit topology ({ICT_RANGES['eyelashes'][1] + 1} "
                         f"vertices), found {full.n_vertices}")
    keep = np.zeros(full.n_vertices, bool)
    for r in KEEP_RANGES:
        a, b = ICT_RANGES[r]
        keep[a:b + 1] = True
    model = subset_model(full, keep, "builtin")
    albedo = paint_albedo(model)
    del model.albedo  # a plain None attribute until a buffer is registered
    model.register_buffer("albedo", torch.as_tensor(albedo))
    model.source = "face3d build-head (ICT-FaceKit FaceXModel, MIT)"
    return model


def run(args: argparse.Namespace) -> int:
    """``face3d build-head`` (registered in :mod:`face3d.models.cli`)."""
    import shutil

    from face3d.fileio import file_sha256
    from face3d.models import BUILTIN_PATH

    out = Path(args.out) if args.out else BUILTIN_PATH
    model = build_bundled_head(args.folder)
    model.save_npz(out, quantum_mm=QUANTUM_MM)
    lic = Path(args.folder) / "LICENSE"
    if not lic.is_file():
        lic = Path(args.folder).parent / "LICENSE"
    if lic.is_file() and out.parent.resolve() != lic.parent.resolve():
        shutil.copyfile(lic, out.parent / LICENSE_NAME)
    print(f"wrote {out}: {model.n_vertices} vertices, {model.n_faces} faces, {model.n_identity} identity, "
          f"{model.n_expression} expressions, {out.stat().st_size / 1e6:.1f} MB, sha256 {file_sha256(out)}")
    return 0


def main(argv=None) -> int:
    from face3d.models.cli import build_head_parser

    ap = argparse.ArgumentParser(prog="python -m face3d.models.ict_build", description=__doc__.split("\n")[0])
    build_head_parser(ap)
    return run(ap.parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
