"""Face measurements in millimetres from a metric mesh's iBUG-68 landmarks.

Measured on the neutral face (identity only: no expression, jaw or pose), so a smile does not
change the "mouth width". The pupils are approximated by the centroids of the six eye-contour
landmarks of each eye (iBUG-68 has no pupil points). Anthropometric names in brackets are the
nearest classical measurement; the landmark definitions differ from a caliper's.
"""
from __future__ import annotations

import torch
from torch import Tensor

# name -> (landmark group A, landmark group B); distance between the groups' centroids.
MEASUREMENTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "interpupillary_distance": (tuple(range(36, 42)), tuple(range(42, 48))),
    "outer_eye_corner_width": ((36,), (45,)),  # [ex-ex]
    "inner_eye_corner_width": ((39,), (42,)),  # [en-en]
    "face_width": ((0,), (16,)),  # jaw-contour ends at eye level, near [zy-zy]
    "jaw_width": ((4,), (12,)),  # near [go-go]
    "nose_length": ((27,), (33,)),  # [n-sn]
    "nose_width": ((31,), (35,)),  # [al-al]
    "mouth_width": ((48,), (54,)),  # [ch-ch]
    "face_height": ((27,), (8,)),  # [n-gn]
    "lower_face_height": ((33,), (8,)),  # [sn-gn]
}


def measure_landmarks(landmarks3d: Tensor) -> dict[str, Tensor]:
    """(B, 68, 3) mm landmarks -> {name: (B,) mm} for every entry of :data:`MEASUREMENTS`."""
    if landmarks3d.dim() != 3 or landmarks3d.shape[1:] != (68, 3):
        raise ValueError(f"landmarks3d: expected shape (B, 68, 3) mm, got {tuple(landmarks3d.shape)}")
    out = {}
    for name, (a, b) in MEASUREMENTS.items():
        pa = landmarks3d[:, list(a)].mean(1)
        pb = landmarks3d[:, list(b)].mean(1)
        out[name] = (pa - pb).norm(dim=-1)
    return out


def measure(model, identity: Tensor) -> dict[str, Tensor]:
    """Measurements of the neutral face: identity (B, n_id) -> {name: (B,) mm}.

    Also ``head_width``/``head_height``/``head_depth``: the bounding box (mm) of the neutral head
    without the model's ``neck`` region (so the height runs from the crown to the chin).
    """
    with torch.no_grad():
        v = model(identity=identity).vertices
        out = measure_landmarks(model.landmark_positions(v, "ibug68"))
        head = v[:, ~model.region_mask("neck", missing_ok=True)]
        ext = head.max(1).values - head.min(1).values
        out["head_width"], out["head_height"], out["head_depth"] = ext.unbind(-1)
    return out
