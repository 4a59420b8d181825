"""Generate the toolkit's procedural character head (``assets/character_head.npz``, model spec
``"character"``): a stylised head for fast tests and cartoon use (the default head is the
ICT-FaceKit one, :mod:`face3d.models.ict_build`).

Run ``python -m face3d.models.builtin_generator [--out PATH]``. No data is downloaded: the head is
sampled from an implicit sculpt (:mod:`face3d.models.builtin_sdf`) on a fixed grid topology
(:mod:`face3d.models.builtin_mesh`), rigged (:mod:`face3d.models.builtin_rig`) and given named
identity and ARKit-style expression bases (:mod:`face3d.models.builtin_blendshapes`). There is no
randomness; two runs give byte-identical files.

The model: millimetres, +x subject's left, +y up, +z out of the face, origin at the centre of the
head (a camera at z = +500..600 mm frames it). 13,809 vertices: a skin grid with an open neck base
(13,144, lips and eyelids cut so they separate), two 12 mm eyeballs (222 each), a mouth bag (221).
Neutral pose: lips closed, eyes open. Joints (rest): root (0, -205, -18), neck (0, -52, -22),
jaw (0, -22, 8) (between the two temporomandibular joints; +x rotation opens the mouth),
eyes (+-31.5, -5, 71). 50 identity components (1 sigma per unit, Gram-Schmidt decorrelated,
named in ``builtin_blendshapes.IDENTITY_NAMES``), 43 ARKit blendshapes (weights in [0, 1];
``jawOpen`` is a linearised 0.12 rad jaw rotation of the skin, so prefer the jaw joint for large
openings; ``mouthClose`` is meant to be used together with ``jawOpen``, as in ARKit).
Landmarks: ``ibug68`` (Multi-PIE order) and ``now7`` (= ibug68 ids 36, 39, 42, 45, 33, 48, 54).
Regions: face, scalp_back, upper_face, lips, eyes, neck, nose, jaw, skull, mouth_interior, skin,
forehead, eyeball_left/right, ear_left/right.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from face3d.models.base import LandmarkSet, MorphableModel
from face3d.models.builtin_blendshapes import EXPRESSION_NAMES, expression_basis, identity_basis
from face3d.models.builtin_mesh import build_mesh
from face3d.models.builtin_rig import JAW, Features, joint_regressor, landmarks, regions, skin_weights

QUANTUM = 2.0**-12  # bases and template are rounded to this many mm: exact reruns, better compression


def _q(a: np.ndarray) -> np.ndarray:
    return (np.round(np.asarray(a, np.float64) / QUANTUM) * QUANTUM).astype(np.float32)


def build_arrays() -> dict:
    """All arrays of the built-in model as numpy (float32/int64), plus names."""
    mesh = build_mesh()
    F = Features(mesh)
    W = skin_weights(F)
    E = expression_basis(F, W[:, JAW], mesh.fan)
    static = np.all(E == 0.0, axis=(1, 2))
    J = joint_regressor(F, W, static)
    B, id_names = identity_basis(F)
    R = regions(F, W)
    L = landmarks(F)
    return {
        "template": _q(mesh.vertices),
        "faces": mesh.faces.astype(np.int64),
        "uvs": mesh.uvs.astype(np.float32),
        "uv_faces": mesh.uv_faces.astype(np.int64),
        "identity_basis": _q(B),
        "identity_names": id_names,
        "expression_basis": _q(E),
        "joint_regressor": J.astype(np.float32),
        "skin_weights": W.astype(np.float32),
        "regions": R,
        "landmarks": L,
    }


def build_character_model() -> MorphableModel:
    """The character head as a :class:`MorphableModel` (about 10 s on one core)."""
    a = build_arrays()
    K = a["identity_basis"].shape[2]
    return MorphableModel(
        name="character",
        template=a["template"],
        faces=a["faces"],
        uvs=a["uvs"],
        uv_faces=a["uv_faces"],
        identity_basis=a["identity_basis"],
        expression_basis=a["expression_basis"],
        expression_names=list(EXPRESSION_NAMES),
        joint_regressor=a["joint_regressor"],
        skin_weights=a["skin_weights"],
        identity_std=np.ones(K, np.float32),
        expression_std=np.full(len(EXPRESSION_NAMES), 0.5, np.float32),
        landmarks={k: LandmarkSet.from_vertices(v) for k, v in a["landmarks"].items()},
        regions=a["regions"],
        source="face3d.models.builtin_generator",
    )


def main(argv=None) -> int:
    from face3d.models import CHARACTER_PATH

    ap = argparse.ArgumentParser(prog="python -m face3d.models.builtin_generator", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=CHARACTER_PATH, help=f"output .npz (default {CHARACTER_PATH})")
    args = ap.parse_args(argv)
    model = build_character_model()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save_npz(args.out)
    print(f"wrote {args.out}: {model.n_vertices} vertices, {model.n_faces} faces, "
          f"{model.n_identity} identity, {model.n_expression} expressions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
