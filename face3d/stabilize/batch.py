"""Stabilizing many meshes: a tensor API and the resumable folder tool behind ``face3d stabilize``.

Every mesh is stabilized onto one reference mesh: its skull motion relative to the reference is
estimated and undone, so the output meshes share the reference's head pose while keeping their
expressions. The same holds for a performance (ordered frames) and for an unordered expression
set; stabilizing each frame onto the reference directly (not frame to frame) means errors do not
accumulate along a sequence.

Folder tool outputs, in ``out_dir``:

- ``<name>``: each stabilized mesh (same file name and format as its input, original vertex
  order, faces and UVs; normals rotated);
- ``transforms/<stem>.json``: per frame, ``stabilize`` (4×4, mm: maps the input mesh onto its
  stabilized version) and ``skull_motion`` (its inverse: the reference's skull onto this frame's);
- ``transforms.json``: all frames in input order, plus the failures, rewritten at the end.

Every file is written atomically (temporary file + :func:`os.replace`). A frame counts as done when
its JSON exists and records the same run (method, model, weights, reference) and the same input
file (size and modification time); rerunning skips done frames, so an interrupted run resumes.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from face3d.fileio import atomic_write_text, file_sha256
from face3d.stabilize.align import apply_transform, invert_transform
from face3d.stabilize.api import Stabilizer, load_stabilizer

MESH_EXTENSIONS = (".obj", ".ply")


@torch.no_grad()
def stabilize_meshes(meshes: Tensor, reference: "int | Tensor" = 0, stabilizer: "Stabilizer | str" = "learned",
                     model="builtin", weights: str | Path | None = None) -> tuple[Tensor, Tensor]:
    """Stabilize meshes of one topology onto a reference.

    Args:
        meshes: (B, V, 3) vertices, mm (float32 or float64).
        reference: index into ``meshes``, or a (V, 3) reference mesh.
        stabilizer: a :class:`~face3d.stabilize.api.Stabilizer` or a method name for
            :func:`~face3d.stabilize.api.load_stabilizer` (with ``model`` and ``weights``).

    Returns:
        ``stabilized`` (B, V, 3) in the reference's head pose, and ``transforms`` (B, 4, 4) with
        ``stabilized = transforms[:, :3, :3] @ meshes + transforms[:, :3, 3]`` (dtype of ``meshes``).
    """
    if not isinstance(meshes, Tensor) or meshes.dim() != 3 or meshes.shape[-1] != 3:
        raise ValueError(f"meshes: expected a (B, V, 3) tensor, got {getattr(meshes, 'shape', type(meshes).__name__)}")
    st = load_stabilizer(stabilizer, model, weights) if isinstance(stabilizer, str) else stabilizer
    ref = meshes[int(reference)] if not isinstance(reference, Tensor) else reference.to(meshes)
    if ref.shape != meshes.shape[1:]:
        raise ValueError(f"reference: expected shape {tuple(meshes.shape[1:])}, got {tuple(ref.shape)}")
    T = invert_transform(st.estimate(ref.expand_as(meshes), meshes).to(meshes))
    return apply_transform(T, meshes), T


# ----------------------------------------------------------------------------------- folder tool
@dataclass(frozen=True)
class BatchConfig:
    """Settings of :func:`stabilize_files`.

    ``reference``: frame index (int, or a string of digits) or file name / stem; default the first
    input. ``batch_size``: meshes per estimate call. ``limit``: stop after this many newly
    stabilized frames (a partial run; rerun to continue). ``progress``: a tqdm bar on stderr.
    """

    method: str = "learned"
    model: str = "builtin"
    weights: str | None = None
    reference: str | int | None = None
    batch_size: int = 32
    limit: int | None = None
    progress: bool = True


@dataclass
class BatchResult:
    """What :func:`stabilize_files` did: file names ``done`` now, ``skipped`` (done by an earlier
    run), ``failed`` (name -> reason); ``stopped_early`` when ``limit`` was reached."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped_early: bool = False
    manifest: Path | None = None


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def collect_inputs(inputs: "str | Path | Sequence[str | Path]") -> list[Path]:
    """A folder (its ``.obj``/``.ply`` files, in natural name order) or a list of files (kept in
    the given order; folders in it are expanded) -> list of paths."""
    items = [inputs] if isinstance(inputs, (str, Path)) else list(inputs)
    out: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            found = sorted((q for q in p.iterdir() if q.suffix.lower() in MESH_EXTENSIONS and q.is_file()), key=_natural_key)
            if not found:
                raise FileNotFoundError(f"{p}: no {'/'.join(MESH_EXTENSIONS)} meshes in this folder")
            out += found
        else:
            out.append(p)  # a missing or broken file is reported per file, not here
    names = [p.name for p in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"inputs: several files share the output name(s) {dup}; rename them or run them separately")
    if not out:
        raise ValueError("inputs: no meshes given")
    return out


def _file_id(p: Path) -> dict:
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _load_checked(path: Path, n_vertices: int, model_name: str):
    from face3d.geometry.mesh_io import load_mesh

    mesh = load_mesh(path)
    if mesh.n_vertices != n_vertices:
        raise ValueError(
            f"{path}: expected a mesh with {n_vertices} vertices (the {model_name} topology), got {mesh.n_vertices}"
        )
    return mesh


def _frame_done(rec_path: Path, out_mesh: Path, run_key: str, src: Path) -> bool:
    if not (rec_path.is_file() and out_mesh.is_file()):
        return False
    try:
        rec = json.loads(rec_path.read_text())
        return rec.get("run") == run_key and rec.get("input") == _file_id(src)
    except (OSError, ValueError):
        return False  # a damaged record: redo the frame


def stabilize_files(inputs: "str | Path | Sequence[str | Path]", out_dir: str | Path,
                    cfg: BatchConfig = BatchConfig(), stabilizer: Stabilizer | None = None) -> BatchResult:
    """Stabilize mesh files onto a reference and write the results (see the module docstring).

    A mesh that cannot be read or has another vertex count is reported in ``failed`` and skipped;
    the others are still processed. Raises if the reference itself is unusable.
    """
    from face3d.geometry.mesh_io import Mesh, save_mesh
    from face3d.models import load_model

    files = collect_inputs(inputs)
    out_dir = Path(out_dir)
    model = load_model(cfg.model)
    st = stabilizer or load_stabilizer(cfg.method, cfg.model if isinstance(cfg.model, str) else model, cfg.weights)

    # Reference.
    ref_i = 0
    if cfg.reference is not None:
        r = str(cfg.reference)
        if r.lstrip("-").isdigit():
            ref_i = int(r)
            if not -len(files) <= ref_i < len(files):
                raise ValueError(f"reference: frame index {ref_i} out of range for {len(files)} inputs")
            ref_i %= len(files)
        else:
            hits = [i for i, p in enumerate(files) if r in (p.name, p.stem, str(p))]
            if not hits:
                raise ValueError(f"reference: {r!r} is not one of the inputs (give a frame index or a file name)")
            ref_i = hits[0]
    ref_path = files[ref_i]
    try:
        ref_mesh = _load_checked(ref_path, model.n_vertices, model.name)
    except Exception as e:
        raise ValueError(f"reference mesh unusable: {e}") from e
    ref = torch.as_tensor(ref_mesh.vertices)

    weights_id = None
    if cfg.method == "learned":
        from face3d.stabilize.api import BUILTIN_WEIGHTS

        weights_id = file_sha256(Path(cfg.weights) if cfg.weights else BUILTIN_WEIGHTS)
    run = {"method": cfg.method, "model": model.name, "n_vertices": model.n_vertices, "weights_sha256": weights_id,
           "reference": ref_path.name, "reference_sha256": file_sha256(ref_path)}
    run_key = hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:16]

    res = BatchResult()
    rec_dir = out_dir / "transforms"
    pending = []
    index = {p: i for i, p in enumerate(files)}
    for p in files:
        if _frame_done(rec_dir / f"{p.stem}.json", out_dir / p.name, run_key, p):
            res.skipped.append(p.name)
        else:
            pending.append(p)
    if cfg.limit is not None and len(pending) > cfg.limit:
        pending, res.stopped_early = pending[: cfg.limit], True

    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=len(files), initial=len(res.skipped), desc=f"stabilize ({cfg.method})", unit="mesh", file=sys.stderr)
    try:
        for start in range(0, len(pending), cfg.batch_size):
            chunk, meshes = [], []
            for p in pending[start : start + cfg.batch_size]:
                try:
                    meshes.append(_load_checked(p, model.n_vertices, model.name))
                    chunk.append(p)
                except Exception as e:  # batch tools report per item and go on
                    res.failed[p.name] = str(e) if str(p) in str(e) else f"{p}: {type(e).__name__}: {e}"
                    if bar is not None:
                        bar.write(f"skipped: {res.failed[p.name]}", file=sys.stderr)
                        bar.update(1)
            if not chunk:
                continue
            verts = torch.stack([torch.as_tensor(m.vertices) for m in meshes])
            skull = st.estimate(ref.expand_as(verts), verts).to(verts)  # reference -> frame
            T = invert_transform(skull)
            out_v = apply_transform(T, verts).numpy()
            for k, (p, m) in enumerate(zip(chunk, meshes)):
                normals = None if m.normals is None else m.normals @ T[k, :3, :3].numpy().T
                save_mesh(out_dir / p.name, Mesh(out_v[k], m.faces, m.uvs, m.uv_faces, normals))
                rec = {"run": run_key, "input": _file_id(p), "source": str(p), "frame": index[p],
                       "stabilize": T[k].tolist(), "skull_motion": skull[k].tolist()}
                atomic_write_text(rec_dir / f"{p.stem}.json", json.dumps(rec))  # after the mesh: marks it done
                res.done.append(p.name)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    frames = []
    for p in files:
        rp = rec_dir / f"{p.stem}.json"
        if p.name in res.failed or not rp.is_file():
            continue
        rec = json.loads(rp.read_text())
        if rec.get("run") == run_key:
            frames.append({"file": p.name, "stabilize": rec["stabilize"], "skull_motion": rec["skull_motion"]})
    manifest = {"format": "face3d-stabilize-v1", **run, "units": "mm", "frames": frames,
                "failed": res.failed, "complete": len(frames) == len(files)}
    res.manifest = out_dir / "transforms.json"
    atomic_write_text(res.manifest, json.dumps(manifest, indent=1))
    return res


__all__ = ["stabilize_meshes", "stabilize_files", "BatchConfig", "BatchResult", "collect_inputs", "MESH_EXTENSIONS"]
