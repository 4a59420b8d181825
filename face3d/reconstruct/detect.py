"""Face detection, 68 landmarks and identity descriptors behind a small interface.

:class:`FaceDetector` is the interface (anything with a ``detect`` method works);
:class:`DlibDetector` implements it with ``dlib`` (pip ``dlib-bin``) and the model files shipped
by the ``face_recognition_models`` package, as a cascade that stays cheap on easy photos and
escalates on hard ones (each stage runs only if the ones before it found no face):

1. ``hog``: ``dlib.get_frontal_face_detector()`` (HOG + linear SVM), image upsampled
   ``upsample`` times (once by default: faces down to ~40 px), on a copy downscaled so its
   longer side is at most ``max_side`` px (very large photos);
2. ``hog_upsampled``: the same, upsampled once more (faces down to ~20 px), only for images of
   at most ``upsample_max_pixels`` (its cost grows 4x per upsampling);
3. ``hog_padded``: the image padded with a replicated-edge margin: a tight crop gives the
   detector no context around the face (its window wants the chin and the cheeks' outline
   inside it);
4. ``cnn``: dlib's CNN detector (``mmod_human_face_detector.dat``) on the padded image, for turned,
   occluded and low-contrast faces (profiles, grayscale archive photos); ~10x the cost of HOG.

Every detection says which stage found it and its score (HOG: SVM margin, ~1 for a clear
frontal face; CNN: its own confidence, ~1 for a clear face). Then, for every box,
``shape_predictor_68_face_landmarks.dat`` gives the 68 iBUG 300-W landmarks (on the full
resolution image) and, optionally, ``dlib_face_recognition_resnet_model_v1.dat`` the 128-D
identity descriptor.

Licence note: dlib's 68-point predictor was trained on the iBUG 300-W data set, whose licence
excludes commercial use. Plug in another detector (any object with the same ``detect`` method)
for commercial work.

``dlib`` is imported lazily, inside :class:`DlibDetector`, so ``import face3d.reconstruct`` works
without it.
"""
from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from face3d.reconstruct.images import check_image, resize_longer_side

Stage = Literal["hog", "hog_upsampled", "hog_padded", "cnn"]
STAGES: tuple[Stage, ...] = ("hog", "hog_upsampled", "hog_padded", "cnn")

__all__ = ["Detection", "DetectionReport", "DlibConfig", "DlibDetector", "FaceDetector", "STAGES",
           "StageRun", "check_image", "largest", "select_face"]


@dataclass(frozen=True)
class Detection:
    """One detected face.

    - ``box`` (4,) float64 pixels ``(x0, y0, x1, y1)`` (OpenCV coordinates: the centre of the
      top-left pixel is (0, 0)).
    - ``score`` float: detector confidence (detector- and stage-specific scale; higher is more
      confident).
    - ``landmarks68`` (68, 2) float64 pixels, iBUG 300-W order (0-16 jaw, 17-26 brows,
      27-35 nose, 36-47 eyes, 48-67 mouth).
    - ``descriptor`` (128,) float64 identity embedding, or ``None`` if not computed.
    - ``stage``: which detector stage found the face (:data:`STAGES` for :class:`DlibDetector`).
    """

    box: np.ndarray
    score: float
    landmarks68: np.ndarray
    descriptor: np.ndarray | None = None
    stage: str = "hog"

    @property
    def area(self) -> float:
        """Box area in pixels²."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0) * max(y1 - y0, 0))

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners (landmarks 36 and 45), pixels."""
        return float(np.linalg.norm(self.landmarks68[36] - self.landmarks68[45]))

    @property
    def eye_to_chin(self) -> float:
        """Distance from the eyes' midpoint (landmarks 36-47) to the chin (landmark 8), pixels."""
        return float(np.linalg.norm(self.landmarks68[36:48].mean(0) - self.landmarks68[8]))


@dataclass(frozen=True)
class StageRun:
    """One cascade stage that ran: ``stage`` name, wall ``seconds``, ``found`` boxes (before merging)."""

    stage: str
    seconds: float
    found: int


@dataclass(frozen=True)
class DetectionReport:
    """What :meth:`DlibDetector.detect_report` did: the ``detections`` (most confident first, as
    :meth:`DlibDetector.detect` returns them), the ``stages`` that ran, and ``scale`` (detection
    image px per photo px, < 1 when the photo was downscaled for detection)."""

    detections: list[Detection]
    stages: list[StageRun] = field(default_factory=list)
    scale: float = 1.0

    def as_dict(self) -> dict:
        """JSON-ready summary (boxes, scores, stages, landmark-derived sizes)."""
        return {
            "scale": self.scale,
            "stages": [{"stage": s.stage, "seconds": s.seconds, "found": s.found} for s in self.stages],
            "faces": [{"index": i, "box": d.box.tolist(), "score": d.score, "stage": d.stage,
                       "eye_to_chin_px": d.eye_to_chin, "interocular_px": d.interocular}
                      for i, d in enumerate(self.detections)],
        }


@runtime_checkable
class FaceDetector(Protocol):
    """Interface every face detector implements."""

    def detect(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 RGB image -> detections, most confident first."""
        ...


@dataclass(frozen=True)
class DlibConfig:
    """Settings of :class:`DlibDetector`.

    - ``upsample``: times the image is doubled in the ``hog`` stage (HOG's window is 80 px:
      once finds faces down to ~40 px).
    - ``min_score``: HOG detections scoring below this are dropped (a clear frontal face is
      ~1; 0 is dlib's own threshold and lets through false positives such as the hand in
      ``skimage.data.astronaut()``, which scores 0.12).
    - ``cnn_min_score``: the same for the CNN stage (real faces score ~0.9-1.1 there).
    - ``descriptor``: compute the 128-D identity descriptor (~0.15 s per face on one core).
    - ``models_dir``: folder with the ``.dat`` files; default: the ``face_recognition_models``
      package's ``models/`` folder.
    - ``stages``: the cascade's stages, in order (a subset of :data:`STAGES`).
    - ``exhaustive``: run every stage and merge their boxes (overlapping boxes keep the earliest
      stage's) instead of stopping at the first stage that finds a face; for photos where
      one face is easy and another is not.
    - ``max_side``: detection runs on a copy downscaled so its longer side is at most this
      (landmarks are still found at full resolution).
    - ``upsample_max_pixels``: ``hog_upsampled`` runs only on detection images of at most this
      many pixels.
    - ``pad``: margin of ``hog_padded`` and ``cnn`` on each side, as a fraction of the longer side.
    - ``cnn_upsample_below``: the CNN (an 80 px window too) upsamples once when the longer side
      of its padded input is below this.
    """

    upsample: int = 1
    min_score: float = 0.3
    cnn_min_score: float = 0.5
    descriptor: bool = False
    models_dir: str | None = None
    stages: tuple[str, ...] = STAGES
    exhaustive: bool = False
    max_side: int = 1024
    upsample_max_pixels: int = 600_000
    pad: float = 0.25
    cnn_upsample_below: int = 700


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


def _pad_edge(image: np.ndarray, m: int) -> np.ndarray:
    return np.ascontiguousarray(np.pad(image, ((m, m), (m, m), (0, 0)), mode="edge"))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


# The CNN's boxes sit higher on the face than the HOG boxes the 68-point predictor was trained
# with: on the packaged test photos where both fire (14 faces), the HOG box centre is 0.05 box
# widths lower and the width the same within 10 % (std), so shift before predicting landmarks.
_CNN_TO_HOG_DY = 0.05


class DlibDetector:
    """:class:`FaceDetector` backed by dlib's HOG and CNN detectors (a cascade, module docstring)
    and its 68-point shape predictor.

    Trained on iBUG 300-W (non-commercial licence); see the module docstring.
    """

    def __init__(self, config: DlibConfig = DlibConfig()) -> None:
        try:
            import dlib  # lazy: optional dependency
        except ImportError as e:
            raise ImportError("DlibDetector needs dlib: `pip install dlib-bin face-recognition-models`") from e

        unknown = [s for s in config.stages if s not in STAGES]
        if unknown or not config.stages:
            raise ValueError(f"DlibConfig.stages: expected a non-empty subset of {STAGES}, got {config.stages}")
        self.config = config
        self._dir = d = _models_dir(config.models_dir)
        pred = d / "shape_predictor_68_face_landmarks.dat"
        if not pred.is_file():
            raise FileNotFoundError(f"dlib 68-point predictor not found: expected {pred}")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(pred))
        self._cnn = None  # loaded on first use: most photos never need it
        self._encoder = None
        if config.descriptor:
            enc = d / "dlib_face_recognition_resnet_model_v1.dat"
            if not enc.is_file():
                raise FileNotFoundError(f"dlib face descriptor model not found: expected {enc}")
            self._encoder = dlib.face_recognition_model_v1(str(enc))

    def _cnn_detector(self):
        if self._cnn is None:
            path = self._dir / "mmod_human_face_detector.dat"
            if not path.is_file():
                raise FileNotFoundError(f"dlib CNN face detector not found: expected {path} "
                                        "(or leave 'cnn' out of DlibConfig.stages)")
            self._cnn = self._dlib.cnn_face_detection_model_v1(str(path))
        return self._cnn

    def _run_stage(self, stage: str, small: np.ndarray) -> list[tuple[np.ndarray, float]] | None:
        """Boxes (x0, y0, x1, y1) in ``small``'s pixels and scores, or None if the stage is skipped."""
        c = self.config
        if stage == "hog":
            rects, scores, _ = self._detector.run(small, c.upsample, 0.0)
            return [(np.array([r.left(), r.top(), r.right(), r.bottom()], float), s)
                    for r, s in zip(rects, scores) if s >= c.min_score]
        if stage == "hog_upsampled":
            if small.shape[0] * small.shape[1] > c.upsample_max_pixels:
                return None
            rects, scores, _ = self._detector.run(small, c.upsample + 1, 0.0)
            return [(np.array([r.left(), r.top(), r.right(), r.bottom()], float), s)
                    for r, s in zip(rects, scores) if s >= c.min_score]
        m = int(round(c.pad * max(small.shape[:2])))
        padded = _pad_edge(small, m)
        if stage == "hog_padded":
            rects, scores, _ = self._detector.run(padded, c.upsample, 0.0)
            return [(np.array([r.left(), r.top(), r.right(), r.bottom()], float) - m, s)
                    for r, s in zip(rects, scores) if s >= c.min_score]
        up = 1 if max(padded.shape[:2]) < c.cnn_upsample_below else 0
        out = []
        for d in self._cnn_detector()(padded, up):
            r = d.rect
            w = r.right() - r.left()
            b = np.array([r.left(), r.top(), r.right(), r.bottom()], float) - m
            b[[1, 3]] += _CNN_TO_HOG_DY * w
            if d.confidence >= c.cnn_min_score:
                out.append((b, float(d.confidence)))
        return out

    def detect_report(self, image: np.ndarray) -> DetectionReport:
        """(H, W, 3) uint8 RGB (or anything :func:`check_image` accepts) -> :class:`DetectionReport`."""
        img = check_image(image)
        small, k = resize_longer_side(img, self.config.max_side)
        runs: list[StageRun] = []
        found: list[tuple[np.ndarray, float, str]] = []
        for stage in self.config.stages:
            t0 = time.perf_counter()
            boxes = self._run_stage(stage, small)
            if boxes is None:
                continue
            runs.append(StageRun(stage, time.perf_counter() - t0, len(boxes)))
            for b, s in boxes:
                if all(_iou(b, f[0]) < 0.4 for f in found):
                    found.append((b, float(s), stage))
            if found and not self.config.exhaustive:
                break
        dets = [self._landmarks(img, b / k, s, stage) for b, s, stage in found]
        dets.sort(key=lambda d: -d.score)
        return DetectionReport(dets, runs, k)

    def _landmarks(self, img: np.ndarray, box: np.ndarray, score: float, stage: str) -> Detection:
        dlib = self._dlib
        H, W = img.shape[:2]
        # A box reaching past the image (tight crops, padded stages): predict on an edge-padded
        # copy so the predictor's samples near the border see the same context detection did.
        m = int(np.ceil(max(0.0, -box[0], -box[1], box[2] - (W - 1), box[3] - (H - 1))))
        src = _pad_edge(img, m) if m > 0 else img
        bi = np.round(box + m).astype(int)
        rect = dlib.rectangle(int(bi[0]), int(bi[1]), int(bi[2]), int(bi[3]))
        shape = self._predictor(src, rect)
        pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64) - m
        desc = None
        if self._encoder is not None:
            desc = np.asarray(self._encoder.compute_face_descriptor(src, shape), dtype=np.float64)
        return Detection(box=np.asarray(box, np.float64), score=score, landmarks68=pts, descriptor=desc, stage=stage)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """(H, W, 3) uint8 RGB -> list of :class:`Detection`, highest score first."""
        return self.detect_report(image).detections


def largest(detections: list[Detection]) -> Detection:
    """The detection with the largest box (ties within 5 % of area go to the higher score)."""
    if not detections:
        raise ValueError("largest: expected at least one detection, got none")
    amax = max(d.area for d in detections)
    near = [d for d in detections if d.area >= 0.95 * amax]
    return max(near, key=lambda d: d.score)


def select_face(detections: list[Detection], index: int | None = None) -> tuple[int, Detection]:
    """``(i, detections[i])``: the face ``index`` picks (the order :meth:`DlibDetector.detect`
    returns, which the JSON report and the overlay number), or the :func:`largest` one when
    ``index`` is None."""
    if not detections:
        raise ValueError("select_face: expected at least one detection, got none")
    if index is None:
        d = largest(detections)
        return next(i for i, e in enumerate(detections) if e is d), d
    if not -len(detections) <= index < len(detections):
        raise IndexError(f"face index {index} out of range: {len(detections)} face(s) detected "
                         f"(valid: 0-{len(detections) - 1})")
    return index % len(detections), detections[index]
