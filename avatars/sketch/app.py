"""``avatars sketch-app``: a local web page (gradio) to draw a head and see its mesh.

The page only calls the Python API (:class:`.api.SketchModeler`, :func:`.editing.edit_region`):
draw with the black pen (contours) and, optionally, red (ridges) and green (valleys); the 3D view
updates after each stroke; with "local edit" on, only the re-drawn area of the mesh changes.
gradio is an optional dependency (``pip install -e ".[sketch]"``), imported when the page starts.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

INK = ("#000000", "#d01818", "#18a028")  # contour, ridge, valley


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


class SketchSession:
    """The page's state and its one action, usable without a browser (what the page runs)."""

    def __init__(self, modeler, out_dir: str | Path | None = None):
        self.modeler = modeler
        self.out = Path(out_dir or tempfile.mkdtemp(prefix="sketch-app-"))
        self.out.mkdir(parents=True, exist_ok=True)
        self.result = None
        self.count = 0

    def update(self, drawing: np.ndarray | None, local_edit: bool) -> tuple[str | None, str | None, str]:
        """A drawing -> (GLB path, OBJ path, status line)."""
        import time

        from avatars.sketch import SketchInputError, edit_region

        if drawing is None:
            return None, None, "draw a head: black outline and features, red ridges, green valleys"
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
        self.count += 1
        glb = self.out / f"head_{self.count:04d}.glb"
        obj = self.out / f"head_{self.count:04d}.obj"
        self.modeler.save(self.result, glb)
        self.modeler.save(self.result, obj)
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
        editor = gr.ImageEditor(label="drawing", type="numpy", image_mode="RGB", height=560, canvas_size=(512, 512),
                                value={"background": np.full((512, 512, 3), 255, np.uint8), "layers": [], "composite": None},
                                brush=gr.Brush(colors=list(INK), default_color=INK[0], default_size=3, color_mode="fixed"),
                                elem_id="sketch-editor")
        with gr.Row():
            local = gr.Checkbox(label="local edit", value=False, elem_id="sketch-local")
            status = gr.Textbox(label="status", interactive=False, elem_id="sketch-status")
        with gr.Row():
            view = gr.Model3D(label="mesh", height=480, elem_id="sketch-mesh", clear_color=(1, 1, 1, 1))
            download = gr.File(label="OBJ", elem_id="sketch-obj")

        def run(value, local_edit):
            glb, obj, msg = session.update(_composite(value), local_edit)
            return glb, obj, msg

        editor.change(run, [editor, local], [view, download, status], trigger_mode="always_last")
    page.session = session
    return page


def launch(weights=None, host: str = "127.0.0.1", port: int = 7860, block: bool = True):
    """Start the page on http://host:port (returns the Blocks when ``block`` is False)."""
    from avatars.sketch.api import DEFAULT_WEIGHTS, SketchModeler

    page = build(SketchModeler.load(weights or DEFAULT_WEIGHTS))
    page.queue().launch(server_name=host, server_port=port, prevent_thread_lock=not block, show_error=True)
    return page
