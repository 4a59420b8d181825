"""Make the documentation figures of the astronaut reconstruction.

    python -m face3d.reconstruct.figures [--out docs]

writes ``astronaut_overlay.png`` (the fitted head rendered over the photo; green: dlib landmarks,
red: the fitted model's landmarks) and ``astronaut_mesh.png`` (the metric mesh, grey-shaded, seen
from the front-left).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="documentation figures of the astronaut reconstruction")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args(argv)
    import numpy as np
    import torch
    from skimage.data import astronaut

    from face3d.models import load_model
    from face3d.reconstruct.api import reconstruct
    from face3d.reconstruct.outputs import (
        atomic_write_bytes, png_bytes, render_mesh_view, render_overlay,
    )

    img = astronaut()
    model = load_model("builtin")
    rec = reconstruct(img, model)
    out = Path(args.out)
    ov = render_overlay(model, img, torch.from_numpy(rec.vertices), float(rec.params["focal"]), None, None,
                        rec.detected_landmarks, rec.landmarks2d, opacity=0.5)
    # Crop to the head so the figure shows the fit, not the space suit.
    x0, y0, x1, y1 = rec.box
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    h = 1.6 * max(x1 - x0, y1 - y0)
    a = np.clip(np.round(c - h).astype(int), 0, None)
    b = np.round(c + h).astype(int)
    atomic_write_bytes(out / "astronaut_overlay.png", png_bytes(ov[a[1]:b[1], a[0]:b[0]]))
    atomic_write_bytes(out / "astronaut_mesh.png", png_bytes(render_mesh_view(model, torch.from_numpy(rec.vertices_head))))
    print(f"wrote {out / 'astronaut_overlay.png'} and {out / 'astronaut_mesh.png'}; NME {100 * rec.nme:.2f} %")
    print("measurements (mm): " + ", ".join(f"{k} {v:.1f}" for k, v in rec.measurements.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
