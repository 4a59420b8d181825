"""Face stabilization: removing rigid head motion from meshes whose expression changes.

After Bednarik et al., "Learning to Stabilize Faces" (Eurographics 2024). The skull moves
rigidly; the visible skin does not (brows and nose slide over the skull, the jaw opens), so a
rigid fit of the face is biased by expression. This package provides

- :func:`load_stabilizer` (``"learned"``, ``"procrustes"``, ``"upper"``, ``"icp"``), all behind the
  :class:`Stabilizer` protocol: ``estimate(source (B, V, 3), target (B, V, 3)) -> (B, 4, 4)``;
- :func:`stabilize_meshes` (tensors) and :func:`stabilize_files` (the resumable folder tool of
  ``face3d stabilize``);
- the synthetic data (:mod:`~face3d.stabilize.synth`), training (:mod:`~face3d.stabilize.train`)
  and evaluation (:mod:`~face3d.stabilize.evaluate`) behind ``face3d stabilize-train`` and
  ``face3d stabilize-eval``.
"""
from face3d.stabilize.api import METHODS, LearnedStabilizer, Stabilizer, load_stabilizer, load_weights
from face3d.stabilize.batch import BatchConfig, BatchResult, stabilize_files, stabilize_meshes

__all__ = [
    "Stabilizer", "LearnedStabilizer", "load_stabilizer", "load_weights", "METHODS",
    "stabilize_meshes", "stabilize_files", "BatchConfig", "BatchResult",
]
