"""Face detection, 68 landmarks and identity descriptors behind a small interface.

:class:`FaceDetector` is the interface (anything with a ``detect`` method works);
:class:`DlibDetector` implements it with ``dlib`` (pip ``dlib-bin``) and the model files shipped
by the ``face_recognition_models`` package:

- ``dlib.get_frontal_face_detector()`` (HOG + linear SVM) for boxes,
- ``shape_predictor_68_face_landmarks.dat`` for the 68 iBUG 300-W landmarks,
- ``dlib_face_recognition_resnet_model_v1.dat`` for the 128-D identity descriptor.

Licence note: dlib's 68-point predictor was trained on the iBUG 300-W data set, whose licence
excludes commercial use. Plug in another detector (any object with the same ``detect`` method)
for commercial work.

``dlib`` is imported lazily, inside :class:`DlibDetector`, so ``import face3d.reconstruct`` works
without it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One detected face.

    - ``box`` (4,) float64 pixels ``(x0, y0, x1, y1)`` (OpenCV coordinates: the centre of the
      top-left pixel is (0, 0)).
    - ``score`` float: detector confidence (detector-specific scale; higher is more confident).
    - ``landmarks68`` (68, 2) float64 pixels, iBUG 300-W order (0-16 jaw, 17-26 brows,
      27-35 nose, 36-47 eyes, 48-67 mouth).
    - ``descriptor`` (128,) float64 identity embedding, or ``None`` if not computed.
    """

    box: np.ndarray
    score: float
    landmarks68: np.ndarray
    descriptor: np.ndarray | None = None

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0) * max(y1 - y0, 0))

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners (landmarks 36 and 45), pixels."""
        return float(np.linalg.norm(self.landmarks68[36] - self.landmarks68[45]))


@runtime_checkable
class FaceDetector(Protocol):
    """Interface every face detector implements."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 RGB image -> detections, most confident first."""
        ...


@dataclass(frozen=True)
class DlibConfig:
    """Settings of :class:`DlibDetector`.

    - ``upsample``: times the image is doubled before HOG detection (finds faces < 80 px).
    - ``min_score``: detections scoring below this are dropped (dlib's HOG scores: a clear
      frontal face is ~1; 0 is dlib's own threshold and lets through false positives such as
      the hand in ``skimage.data.astronaut()``, which scores 0.12).
    - ``descriptor``: compute the 128-D identity descriptor (~0.15 s per face on one core).
    - ``models_dir``: folder with the ``.dat`` files; default: the ``face_recognition_models``
      package's ``models/`` folder.
    """

    upsample: int = 1
    min_score: float = 0.3
    descriptor: bool = False
    models_dir: str | None = None


def _models_dir(explicit: str | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    # The package's __init__ imports pkg_resources (setuptools), which may be missing, so locate
    # the folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "DlibDetector needs the dlib model files: `pip install face-recognition-models` "
            "(or pass DlibConfig(models_dir=...) pointing at a folder with "
            "shape_predictor_68_face_landmarks.dat)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` as a C-contiguous (H, W, 3) uint8 array or raise a clear error."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"{what}: expected an (H, W, 3) RGB image, got shape {img.shape}")
    img = img[..., :3]
    if img.dtype != np.uint8:
        if np.issubdtype(img.dtype, np.floating) and img.size and img.max() <= 1.0:
            img = img * 255.0
        img = np.clip(img, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


class DlibDetector:
    """:class:`FaceDetector` backed by dlib's HOG detector and 68-point shape predictor.

    Trained on iBUG 300-W (non-commercial licence); see the module docstring.
    """

    def __init__(self, config: DlibConfig = DlibConfig()) -> None:
        try:
            import dlib  # lazy: optional dependency
        except ImportError as e:
            raise ImportError("DlibDetector needs dlib: `pip install dlib-bin face-recognition-models`") from e

        self.config = config
        d = _models_dir(config.models_dir)
        pred = d / "shape_predictor_68_face_landmarks.dat"
        if not pred.is_file():
            raise FileNotFoundError(f"dlib 68-point predictor not found: expected {pred}")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(pred))
        self._encoder = None
        if config.descriptor:
            enc = d / "dlib_face_recognition_resnet_model_v1.dat"
            if not enc.is_file():
                raise FileNotFoundError(f"dlib face descriptor model not found: expected {enc}")
            self._encoder = dlib.face_recognition_model_v1(str(enc))

    def detect(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 RGB -> list of :class:`Detection`, highest score first."""
        img = check_image(image)
        rects, scores, _ = self._detector.run(img, self.config.upsample, 0.0)
        out = []
        for r, s in zip(rects, scores):
            if s < self.config.min_score:
                continue
            shape = self._predictor(img, r)
            pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
            desc = None
            if self._encoder is not None:
                desc = np.asarray(self._encoder.compute_face_descriptor(img, shape), dtype=np.float64)
            box = np.array([r.left(), r.top(), r.right(), r.bottom()], dtype=np.float64)
            out.append(Detection(box=box, score=float(s), landmarks68=pts, descriptor=desc))
        out.sort(key=lambda d: -d.score)
        return out


def largest(detections: list[Detection]) -> Detection:
    """The detection with the largest box (ties within 5 % of area go to the higher score)."""
    if not detections:
        raise ValueError("largest: expected at least one detection, got none")
    amax = max(d.area for d in detections)
    near = [d for d in detections if d.area >= 0.95 * amax]
    return max(near, key=lambda d: d.score)
