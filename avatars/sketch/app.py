"""``avatars sketch-app``: a local web page (gradio) to draw a head and see its mesh.

The page only calls the Python API (:class:`.api.SketchModeler`, :func:`.editing.edit_region`):
draw with the black pen (contours) and, optionally, red (ridges) and green (valleys); the 3D view
updates after each stroke; with "local edit" on, only the re-drawn area of the mesh changes. A
side view (:mod:`.views`) shows the current mesh turned by 30, 45 or 60° to draw detail strokes
over: the nose's, brow's and chin's profile, which a front drawing cannot show. Each drawing moves
the mesh further; of the orders tried on validation drawings, four at -30°, -60°, +30° and +60°
did best (docs/performance.md). "front" goes back to the front drawing.
gradio is an optional dependency (``pip install -e ".[sketch]"``), imported when the page starts.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

INK = ("#000000", "#d01818", "#18a028")  # contour, ridge, valley
VIEWS = {"front": 0.0, "left (-30°)": -30.0, "left (-45°)": -45.0, "left (-60°)": -60.0,
         "right (+30°)": 30.0, "right (+45°)": 45.0, "right (+60°)": 60.0}
PAGE = 512  # canvas pixels


def _blank_page() -> dict:
    return {"background": np.full((PAGE, PAGE, 3), 255, np.uint8), "layers": [], "composite": None}


def _composite(value) -> np.ndarray | None:
    """The editor's value -> (H, W, 3) uint8 drawing on white, or None when nothing is there."""
    if value is None:
        return None
    img = value.get("composite") if isinstance(value, dict) else value
    if img is None:
        return None
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 4:  # transparent canvas = white paper
        a = img[..., 3:4].astype(np.float32) / 255
        img = (img[..., :3].astype(np.float32) * a + 255 * (1 - a)).astype(np.uint8)
    return img


def _strokes(value, page: np.ndarray) -> np.ndarray | None:
    """The strokes drawn over a side view's ``page`` (H, W, 3) uint8, alone on white paper: the
    composite's pixels that differ from the page (the editor's RGB layers carry no alpha)."""
    comp = _composite(value)
    if comp is None or comp.shape != page.shape:
        return None
    drawn = np.abs(comp.astype(np.int16) - page.astype(np.int16)).max(-1) > 40
    if not drawn.any():
        return None
    out = np.full_like(comp, 255)
    out[drawn] = comp[drawn]
    return out


class SketchSession:
    """The page's state and its actions, usable without a browser (what the page runs)."""

    def __init__(self, modeler, out_dir: str | Path | None = None):
        self.modeler = modeler
        self.out = Path(out_dir or tempfile.mkdtemp(prefix="sketch-app-"))
        self.out.mkdir(parents=True, exist_ok=True)
        self.result = None
        self.count = 0
        self.yaw = 0.0  # the view being drawn in (0: the front drawing)
        self.base = None  # the result a side view's strokes are applied to
        self.front = None  # the front drawing's editor value, kept while a side view is open
        self.last = None  # the front drawing the mesh was last made or edited from
        self.paths = (None, None)  # the last mesh written (GLB, OBJ)
        self.page = None  # the side view's picture under the strokes

    def set_view(self, yaw: float, editor_value) -> tuple[dict, str]:
        """Switch to the view at ``yaw`` -> (the editor's new value, status line). A side view
        needs a mesh first; its page shows the current mesh turned."""
        from avatars.sketch.views import view_image

        if yaw == self.yaw:
            return editor_value, ""
        if yaw != 0 and self.result is None:
            return editor_value, "draw the front view first"
        if self.yaw == 0:
            self.front = editor_value
        self.yaw = yaw
        if yaw == 0:
            return self.front or _blank_page(), "front view: the front drawing again"
        self.base = self.result
        self.page = page = view_image(self.modeler, self.result, yaw, size=PAGE)
        return {"background": page, "layers": [], "composite": page}, f"side view {yaw:+.0f}°: draw detail strokes over the head"

    def detail(self, strokes: np.ndarray | None) -> tuple[str | None, str | None, str]:
        """Detail strokes drawn in the current side view (alone on white, the page's size) ->
        (GLB path, OBJ path, status line).
        Each call re-applies the whole view's strokes to the mesh the view was opened on."""
        import time

        from avatars.sketch import SketchInputError
        from avatars.sketch.views import add_detail

        if strokes is None:
            return (*self.paths, f"side view {self.yaw:+.0f}°: draw detail strokes over the head")
        t0 = time.perf_counter()
        try:
            self.result = add_detail(self.modeler, self.base, strokes, self.yaw)
        except SketchInputError as e:
            return (*self.paths, f"not yet a detail drawing: {e}")
        return self._write(f"detail ({self.yaw:+.0f}°)", t0)

    def update(self, drawing: np.ndarray | None, local_edit: bool) -> tuple[str | None, str | None, str]:
        """A drawing -> (GLB path, OBJ path, status line)."""
        import time

        from avatars.sketch import SketchInputError, edit_region

        if drawing is None:
            return None, None, "draw a head: black outline and features, red ridges, green valleys"
        if self.last is not None and drawing.shape == self.last.shape and np.array_equal(drawing, self.last):
            # The same front drawing again (back from a side view): keep the mesh and its detail.
            return (*self.paths, f"unchanged: {self.result.vertices.shape[0]} vertices")
        t0 = time.perf_counter()
        try:
            if local_edit and self.result is not None:
                self.result = edit_region(self.modeler, self.result, drawing)
                what = "local edit"
            else:
                self.result = self.modeler(drawing)
                what = "whole head"
        except SketchInputError as e:
            return None, None, f"not yet a drawing: {e}"
        self.last = drawing.copy()
        return self._write(what, t0)

    def _write(self, what: str, t0: float) -> tuple[str, str, str]:
        import time

        self.count += 1
        glb = self.out / f"head_{self.count:04d}.glb"
        obj = self.out / f"head_{self.count:04d}.obj"
        self.modeler.save(self.result, glb)
        self.modeler.save(self.result, obj)
        self.paths = (str(glb), str(obj))
        return str(glb), str(obj), f"{what}: {time.perf_counter() - t0:.2f} s, {self.result.vertices.shape[0]} vertices"


def build(modeler):
    """The gradio Blocks page for ``modeler``."""
    try:
        import gradio as gr
    except ImportError:
        raise ImportError("the sketch page needs gradio: pip install -e \".[sketch]\" (or pip install 'gradio>=6.31')") from None

    session = SketchSession(modeler)
    with gr.Blocks(title="Sketch to mesh") as page:
        gr.Markdown("## Sketch to mesh\nDraw a front view of a head: **black** contours and features, "
                    "optional **red** ridges and **green** valleys. Tick *local edit* to change only what you re-draw.")
        editor = gr.ImageEditor(label="drawing", type="numpy", image_mode="RGB", height=560, canvas_size=(PAGE, PAGE),
                                value=_blank_page(),
                                brush=gr.Brush(colors=list(INK), default_color=INK[0], default_size=3, color_mode="fixed"),
                                elem_id="sketch-editor")
        with gr.Row():
            view_pick = gr.Radio(list(VIEWS), value="front", label="view", elem_id="sketch-view")
            local = gr.Checkbox(label="local edit", value=False, elem_id="sketch-local")
            status = gr.Textbox(label="status", interactive=False, elem_id="sketch-status")
        with gr.Row():
            view = gr.Model3D(label="mesh", height=480, elem_id="sketch-mesh", clear_color=(1, 1, 1, 1))
            download = gr.File(label="OBJ", elem_id="sketch-obj")

        def run(value, local_edit):
            if session.yaw != 0:
                return session.detail(_strokes(value, session.page))
            return session.update(_composite(value), local_edit)

        def turn(name, value):
            return session.set_view(VIEWS[name], value)

        editor.change(run, [editor, local], [view, download, status], trigger_mode="always_last")
        view_pick.change(turn, [view_pick, editor], [editor, status])
    page.session = session
    return page


def launch(weights=None, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the page on http://host:port (returns the Blocks when ``block`` is False)."""
    from avatars.sketch.api import DEFAULT_WEIGHTS, SketchModeler

    page = build(SketchModeler.load(weights or DEFAULT_WEIGHTS))
    page.queue().launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True)
    return page
