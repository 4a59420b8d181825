"""Sketch to mesh (after SketchMetaFace, Luo et al., TVCG 2024): a front drawing of a head ->
a mesh of a morphable model, coarse (coefficients, :mod:`.coarse`) then fine (depth and normal
maps moving the vertices, :mod:`.fine`), with local re-drawing (:mod:`.editing`) and detail
drawings made over the mesh turned to a side view (:mod:`.views`).

Modules: :mod:`.drawing` (synthetic drawings and reading real ones), :mod:`.heads` (random
heads with detail), :mod:`.coarse`, :mod:`.fine`, :mod:`.editing`, :mod:`.views`, :mod:`.train`,
:mod:`.evaluate`, :mod:`.api` (what the CLI and the web page call), :mod:`.app` (the page).
"""
from avatars.sketch.api import SketchModeler, SketchResult
from avatars.sketch.drawing import SketchInputError, read_drawing
from avatars.sketch.editing import edit_region
from avatars.sketch.views import add_detail, view_image

__all__ = ["SketchModeler", "SketchResult", "SketchInputError", "read_drawing", "edit_region", "add_detail", "view_image"]
