"""Metric 3D face reconstruction from photos and video (after MICA, Zielonka et al. 2022).

Stages, one module each: :mod:`.images` (reading photos), :mod:`.detect` (face detector
interface + dlib cascade), :mod:`.contour` (the sliding jaw contour), :mod:`.estimator`
(landmarks -> metric identity network, trained on :mod:`.synthetic` data), :mod:`.fitter`
(analysis by synthesis), :mod:`.track` (video), :mod:`.outputs` / :mod:`.measure` (files and
millimetre measurements), :mod:`.now` (NoW benchmark protocol), :mod:`.evaluate` (synthetic metric
benchmark), :mod:`.api` (``reconstruct(image)``) and :mod:`.cli` (commands).

Attributes are loaded lazily so ``import face3d.reconstruct`` stays cheap and never imports dlib.

The package itself is callable: ``face3d.reconstruct(image)`` is
:func:`face3d.reconstruct.api.reconstruct`. (A function named like the subpackage would be
shadowed by the subpackage as soon as it is imported, so the package forwards the call instead.)
"""
from __future__ import annotations

import importlib
import sys
import types

_EXPORTS = {
    "reconstruct": "face3d.reconstruct.api",
    "Reconstruction": "face3d.reconstruct.api",
    "ReconstructConfig": "face3d.reconstruct.api",
    "NoFaceError": "face3d.reconstruct.api",
    "FaceDetector": "face3d.reconstruct.detect",
    "Detection": "face3d.reconstruct.detect",
    "DlibDetector": "face3d.reconstruct.detect",
    "DlibConfig": "face3d.reconstruct.detect",
    "DetectionReport": "face3d.reconstruct.detect",
    "select_face": "face3d.reconstruct.detect",
    "load_image": "face3d.reconstruct.images",
    "SlidingContour": "face3d.reconstruct.contour",
    "FitConfig": "face3d.reconstruct.fitter",
    "FitResult": "face3d.reconstruct.fitter",
    "fit": "face3d.reconstruct.fitter",
    "ShapeEstimator": "face3d.reconstruct.estimator",
    "train_estimator": "face3d.reconstruct.estimator",
    "load_estimator": "face3d.reconstruct.estimator",
    "track": "face3d.reconstruct.track",
    "TrackConfig": "face3d.reconstruct.track",
    "now_error": "face3d.reconstruct.now",
    "NowConfig": "face3d.reconstruct.now",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'face3d.reconstruct' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        """``face3d.reconstruct(image, model="builtin", ...)``: see :func:`face3d.reconstruct.api.reconstruct`."""
        from face3d.reconstruct.api import reconstruct

        return reconstruct(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
