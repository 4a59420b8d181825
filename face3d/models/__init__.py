"""Morphable head models: the built-in one, and loaders for the models users bring.

``load_model(spec)`` is the one entry point:

- ``"builtin"``: the toolkit's own head model (``assets/builtin_head.npz``, made by
  ``python -m face3d.models.builtin_generator``).
- ``"flame:PATH"``: a FLAME 2020/2023 ``generic_model.pkl`` (optionally with
  ``landmark_embedding.npy`` beside it).
- ``"ict:PATH"``: an ICT-FaceKit folder of OBJ files.
- ``"npz:PATH"`` (or a path ending in ``.npz``): a model saved with ``MorphableModel.save_npz``.
"""
from __future__ import annotations

from pathlib import Path

from face3d.models.base import (
    HEAD_JOINT,
    JOINT_NAMES,
    JOINT_PARENTS,
    REQUIRED_REGIONS,
    LandmarkSet,
    ModelFormatError,
    ModelOutput,
    MorphableModel,
    load_npz,
)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
BUILTIN_PATH = ASSETS / "builtin_head.npz"

_cache: dict[str, MorphableModel] = {}


def load_model(spec: "str | MorphableModel" = "builtin") -> MorphableModel:
    """Load a morphable model from a spec string (see the module docstring).

    A ``MorphableModel`` passed in is returned unchanged, so APIs can take either. The built-in
    model is cached; every call returns a fresh copy of it, so callers may move it freely.
    """
    if isinstance(spec, MorphableModel):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec: expected a string such as 'builtin', 'flame:PATH' or 'ict:PATH', got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    if spec == "builtin":
        if "builtin" not in _cache:
            if not BUILTIN_PATH.is_file():
                raise FileNotFoundError(
                    f"built-in model not found at {BUILTIN_PATH}; regenerate it with "
                    "`python -m face3d.models.builtin_generator`"
                )
            _cache["builtin"] = load_npz(BUILTIN_PATH)
        import copy

        return copy.deepcopy(_cache["builtin"])
    if kind == "flame" and arg:
        from face3d.models.flame import load_flame

        return load_flame(arg)
    if kind == "ict" and arg:
        from face3d.models.ict import load_ict

        return load_ict(arg)
    if kind == "npz" and arg:
        return load_npz(arg)
    if spec.endswith(".npz"):
        return load_npz(spec)
    raise ValueError(
        f"model spec: expected 'builtin', 'flame:PATH', 'ict:PATH' or 'npz:PATH', got {spec!r}"
    )


__all__ = [
    "load_model", "MorphableModel", "ModelOutput", "LandmarkSet", "ModelFormatError", "load_npz",
    "JOINT_NAMES", "JOINT_PARENTS", "HEAD_JOINT", "REQUIRED_REGIONS", "BUILTIN_PATH",
]
