"""Morphable head models: the built-in one, and loaders for the models users bring.

``load_model(spec)`` is the one entry point:

- ``"builtin"`` (the default): the bundled head (``assets/builtin_head.npz``), a compact
  ICT-FaceKit model (MIT) built by ``face3d build-head FaceXModel/`` (:mod:`face3d.models.ict_build`).
- ``"character"``: the procedural stylised head (``assets/character_head.npz``, made by
  ``python -m face3d.models.builtin_generator``): small (13,809 vertices), for fast tests and as
  a cartoon character.
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
CHARACTER_PATH = ASSETS / "character_head.npz"
DEFAULT_MODEL = "builtin"
_BUNDLED = {
    "builtin": (BUILTIN_PATH, "`face3d build-head /path/to/ICT-FaceKit/FaceXModel`"),
    "character": (CHARACTER_PATH, "`python -m face3d.models.builtin_generator`"),
}

_cache: dict[str, MorphableModel] = {}


def load_model(spec: "str | MorphableModel" = DEFAULT_MODEL) -> MorphableModel:
    """Load a morphable model from a spec string (see the module docstring).

    A ``MorphableModel`` passed in is returned unchanged, so APIs can take either. The bundled
    models are cached; every call returns a fresh copy, so callers may move it freely.
    """
    if isinstance(spec, MorphableModel):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"spec: expected a string such as 'builtin', 'flame:PATH' or 'ict:PATH', got {type(spec).__name__}")
    kind, _, arg = spec.partition(":")
    if spec in _BUNDLED:
        if spec not in _cache:
            path, command = _BUNDLED[spec]
            if not path.is_file():
                raise FileNotFoundError(f"bundled model {spec!r} not found at {path}; rebuild it with {command}")
            _cache[spec] = load_npz(path)
        import copy

        return copy.deepcopy(_cache[spec])
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
        f"model spec: expected 'builtin', 'character', 'flame:PATH', 'ict:PATH' or 'npz:PATH', got {spec!r}"
    )


__all__ = [
    "load_model", "MorphableModel", "ModelOutput", "LandmarkSet", "ModelFormatError", "load_npz",
    "JOINT_NAMES", "JOINT_PARENTS", "HEAD_JOINT", "REQUIRED_REGIONS", "BUILTIN_PATH",
    "CHARACTER_PATH", "DEFAULT_MODEL",
]
