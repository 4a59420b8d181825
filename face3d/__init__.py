"""face3d: morphable head models, geometry and a differentiable rasterization core.

The base package of the toolkit; ``avatars`` and ``audio2exp`` build on it. Importing it loads
only torch and numpy: optional backends (nvdiffrast, pytorch3d, open3d, dlib) are imported by the
functions that need them.
"""
from face3d.models import LandmarkSet, ModelOutput, MorphableModel, load_model

__version__ = "0.1.0"
__all__ = ["load_model", "MorphableModel", "ModelOutput", "LandmarkSet", "reconstruct", "__version__"]


def __getattr__(name: str):
    # Reconstruction pulls in the fitter and (when called) dlib; load it on first use only. The
    # subpackage is itself callable, so face3d.reconstruct(image) works whether or not some other
    # import has already bound the name to the subpackage.
    if name == "reconstruct":
        import importlib

        return importlib.import_module("face3d.reconstruct")
    raise AttributeError(f"module 'face3d' has no attribute {name!r}")
