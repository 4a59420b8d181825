"""The sketch web page in a real headless browser (Debian chromium + chromium-driver, selenium):
strokes drawn on the canvas produce a mesh, and a local edit moves only its region."""
from __future__ import annotations

import math
import shutil
import socket
import time

import pytest
import torch

gr = pytest.importorskip("gradio", reason="the page needs the [sketch] extra (gradio)")
selenium = pytest.importorskip("selenium", reason="the browser test needs the [sketch] extra (selenium)")
if not (shutil.which("chromium") and shutil.which("chromedriver")):
    pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stroke(driver, canvas, points):
    from selenium.webdriver.common.action_chains import ActionChains

    ac = ActionChains(driver)
    ac.move_to_element_with_offset(canvas, *points[0]).click_and_hold()
    for p in points[1:]:
        ac.move_to_element_with_offset(canvas, *p)
    ac.release().perform()


def _wait(cond, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(0.25)
    return False


def _settle(session, quiet: float = 4.0, timeout: float = 60.0) -> None:
    """Wait until the page has made no new mesh for ``quiet`` seconds."""
    t0, last, since = time.time(), session.count, time.time()
    while time.time() - t0 < timeout and time.time() - since < quiet:
        time.sleep(0.25)
        if session.count != last:
            last, since = session.count, time.time()


def test_drawing_on_the_page_makes_a_mesh_and_a_local_edit(builtin_model):
    from selenium import webdriver
    from selenium.webdriver.common.by import By

    from avatars.sketch.api import DEFAULT_WEIGHTS, SketchModeler
    from avatars.sketch.app import build
    from face3d.geometry.mesh_io import load_mesh

    page = build(SketchModeler.load(DEFAULT_WEIGHTS, model=builtin_model))
    port = _free_port()
    page.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1300,1400", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=opts)
    try:
        driver.get(f"http://127.0.0.1:{port}")
        assert _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#sketch-editor canvas"), 30)
        canvas = max(driver.find_elements(By.CSS_SELECTOR, "#sketch-editor canvas"), key=lambda c: c.size["width"] * c.size["height"])
        s = page.session

        def status() -> str:
            return driver.find_element(By.CSS_SELECTOR, "#sketch-status textarea").get_attribute("value") or ""
        # A head: outline, two eyes, nose, mouth (offsets from the canvas centre, pixels).
        _stroke(driver, canvas, [(int(120 * math.sin(2 * math.pi * k / 48)), int(-160 * math.cos(2 * math.pi * k / 48))) for k in range(49)])
        for pts in ([(-60, -30), (-20, -30)], [(20, -30), (60, -30)], [(0, -20), (-8, 25), (8, 25)], [(-40, 70), (0, 78), (40, 70)]):
            _stroke(driver, canvas, pts)
        assert _wait(lambda: s.result is not None and "vertices" in status(), 40), status()
        assert _wait(lambda: s.count >= 1, 5)
        _settle(s)  # let the last strokes' updates finish
        first = s.result.vertices.clone()
        mesh = load_mesh(sorted(s.out.glob("*.obj"))[-1])
        assert mesh.vertices.shape == (builtin_model.n_vertices, 3)
        assert torch.allclose(torch.from_numpy(mesh.vertices).float(), first, atol=1e-3)
        # Local edit: tick the box, re-draw the mouth.
        driver.find_element(By.CSS_SELECTOR, "#sketch-local input").click()
        n = s.count
        _stroke(driver, canvas, [(-45, 90), (0, 100), (45, 90)])
        assert _wait(lambda: s.count > n and "local edit" in status(), 40), status()
        k = s.count
        _settle(s)
        assert s.count == k  # no mesh written after the edit's (a repeat of the same drawing writes none)
        # Compare the edit's mesh with the one it edited (the page writes each mesh in turn), not
        # with `first`: under load a late update of the first strokes can land after `first`.
        objs = sorted(s.out.glob("*.obj"))
        before, after = (torch.from_numpy(load_mesh(p).vertices) for p in objs[-2:])
        assert torch.equal(after.float(), s.result.vertices)
        moved = (after - before).norm(dim=-1) > 0
        assert 0 < int(moved.sum()) < int(page.session.modeler.editable.sum())
        assert not bool(moved[~page.session.modeler.editable].any())
    finally:
        driver.quit()
        page.close()
