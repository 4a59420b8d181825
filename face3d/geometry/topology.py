"""Vertex and face subsets of a triangle mesh."""
from __future__ import annotations

import torch
from torch import Tensor


def faces_within(faces: Tensor, vertex_mask: Tensor) -> Tensor:
    """(F, 3) int64 faces and a (V,) bool vertex mask -> the (F', 3) faces whose three vertices
    are all in the mask (same order, same indices)."""
    faces = torch.as_tensor(faces, dtype=torch.int64)
    return faces[vertex_mask[faces].all(-1)]
