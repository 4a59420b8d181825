"""Triangle-mesh files: OBJ, PLY and GLB, read and written without reordering vertices.

Morphable models identify vertices by their index, so a reader that merges, drops or reorders
vertices (as general-purpose mesh libraries do by default) silently breaks every model-space
quantity. Every reader here keeps the file's vertex order and count exactly; polygons are fan
triangulated (``(p0, p1, p2), (p0, p2, p3), ...``) in file order.

- OBJ: own numpy reader/writer. ``v``, ``vt``, ``vn``, ``f`` with ``v``, ``v/vt``, ``v//vn`` and
  ``v/vt/vn`` corners, negative (relative) indices, comments, ``usemtl``/``g``/``o``/``s`` lines
  (ignored). UVs keep their own index (``uv_faces``), so UV seams survive.
- PLY: own reader/writer, ascii and binary (little and big endian). Per-vertex UVs
  (``s``/``t``, ``u``/``v``, ``texture_u``/``texture_v``) or per-corner ``texcoord`` face lists
  (MeshLab's convention, used on write when the UVs have seams).
- GLB: through ``trimesh`` (imported lazily) with ``process=False``. glTF stores one UV per vertex,
  so a mesh with UV seams cannot be written as GLB without splitting vertices; that is refused.

Writes are atomic: the file is written to a temporary file in the same folder and moved into
place with :func:`os.replace`, so a crash never leaves a half-written mesh under the final name.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from face3d.fileio import atomic_write

__all__ = ["Mesh", "MeshFormatError", "load_mesh", "save_mesh", "read_obj", "write_obj"]

SUPPORTED = (".obj", ".ply", ".glb")


class MeshFormatError(ValueError):
    """A mesh file is unreadable, empty, or indexes outside its own arrays."""


@dataclass
class Mesh:
    """A triangle mesh in numpy.

    - ``vertices`` (V, 3) float64, in the file's units (the toolkit uses mm).
    - ``faces`` (F, 3) int64 indices into ``vertices``.
    - ``uvs`` (T, 2) float64 texture coordinates (v up, OBJ convention) or None.
    - ``uv_faces`` (F, 3) int64 indices into ``uvs`` (UV seams allowed) or None.
    - ``normals`` (V, 3) float64 per-vertex normals or None (OBJ ``vn`` are kept only when they
      map one-to-one onto vertices).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray | None = None
    uv_faces: np.ndarray | None = None
    normals: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float64)
        self.faces = np.asarray(self.faces, dtype=np.int64).reshape(-1, 3)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"Mesh.vertices: expected shape (V, 3), got {self.vertices.shape}")
        if self.uvs is not None:
            self.uvs = np.asarray(self.uvs, dtype=np.float64).reshape(-1, 2)
            self.uv_faces = (np.asarray(self.uv_faces, dtype=np.int64).reshape(-1, 3)
                             if self.uv_faces is not None else self.faces.copy())
            if self.uv_faces.shape != self.faces.shape:
                raise ValueError(f"Mesh.uv_faces: expected shape {self.faces.shape} (like faces), got {self.uv_faces.shape}")
        elif self.uv_faces is not None:
            raise ValueError("Mesh.uv_faces given without uvs")
        if self.normals is not None:
            self.normals = np.asarray(self.normals, dtype=np.float64)
            if self.normals.shape != self.vertices.shape:
                raise ValueError(f"Mesh.normals: expected shape {self.vertices.shape} (like vertices), got {self.normals.shape}")

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def validate(self, source: str = "mesh") -> "Mesh":
        """Raise :class:`MeshFormatError` if any index is out of range; returns self."""
        _check_range(self.faces, self.n_vertices, "face vertex", source)
        if self.uvs is not None:
            _check_range(self.uv_faces, len(self.uvs), "face UV", source)
        return self


def _check_range(idx: np.ndarray, n: int, what: str, source: str) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise MeshFormatError(
            f"{source}: {what} index out of range: expected indices in [0, {n}), found "
            f"[{int(idx.min())}, {int(idx.max())}]"
        )


# ----------------------------------------------------------------------------------- public
def load_mesh(path: str | Path) -> Mesh:
    """Read an ``.obj``, ``.ply`` or ``.glb`` file, keeping vertex order (see the module docstring).

    Raises FileNotFoundError for a missing file, :class:`MeshFormatError` (naming the file) for an
    unreadable or empty one, an out-of-range index or an unsupported extension.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise MeshFormatError(f"{path}: unsupported mesh extension {ext!r}; expected one of {SUPPORTED}")
    if not path.is_file():
        raise FileNotFoundError(f"mesh file not found: {path}")
    if ext == ".obj":
        mesh = read_obj(path)
    elif ext == ".ply":
        mesh = _read_ply(path)
    else:
        mesh = _read_glb(path)
    if mesh.n_vertices == 0:
        raise MeshFormatError(f"{path}: no vertices found")
    return mesh.validate(str(path))


def save_mesh(path: str | Path, mesh: Mesh, *, binary: bool = True) -> None:
    """Write ``mesh`` to ``.obj``, ``.ply`` (binary little endian, or ascii with
    ``binary=False``) or ``.glb``, atomically, keeping vertex order.

    Vertex positions are written in float64 (OBJ: 17 significant digits) so a round trip is exact
    for OBJ/PLY; GLB stores float32.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SUPPORTED:
        raise MeshFormatError(f"{path}: unsupported mesh extension {ext!r}; expected one of {SUPPORTED}")
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh: expected a face3d.geometry.Mesh, got {type(mesh).__name__}")
    mesh.validate(f"mesh to be written to {path}")
    if ext == ".obj":
        atomic_write(path, lambda f: f.write(_obj_bytes(mesh)))
    elif ext == ".ply":
        atomic_write(path, lambda f: f.write(_ply_bytes(mesh, binary)))
    else:
        atomic_write(path, lambda f: f.write(_glb_bytes(mesh, path)))


# ----------------------------------------------------------------------------------- OBJ
def _parse_floats(lines: list[bytes], ncol: int, source: str, what: str) -> np.ndarray:
    """Rows of whitespace-separated numbers (keyword already stripped) -> (n, ncol) float64.

    Extra columns (e.g. vertex colours after x y z) are dropped.
    """
    if not lines:
        return np.zeros((0, ncol))
    try:
        flat = np.array(b" ".join(lines).split(), dtype=np.float64)
        if flat.size == len(lines) * ncol:
            return flat.reshape(-1, ncol)
        rows = [np.array(l.split(), dtype=np.float64) for l in lines]  # ragged: rare (colours on some rows)
        if min(len(r) for r in rows) < ncol:
            raise ValueError(f"a {what} line has fewer than {ncol} numbers")
        return np.stack([r[:ncol] for r in rows])
    except ValueError as e:
        raise MeshFormatError(f"{source}: could not parse {what} lines ({e})") from None


def read_obj(path: str | Path) -> Mesh:
    """Read a Wavefront OBJ (see the module docstring). Vertex order is the file's."""
    path = Path(path)
    src = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MeshFormatError(f"{src}: unreadable ({e})") from e
    if b"\0" in data[:4096]:
        raise MeshFormatError(f"{src}: not a text OBJ file (binary data found)")
    lines = data.replace(b"\r", b"\n").replace(b"\t", b" ").split(b"\n")
    v_lines, vt_lines, vn_lines, f_lines = [], [], [], []
    v_pos, vt_pos, vn_pos, f_pos = [], [], [], []
    # One pass keeping line numbers: negative OBJ indices are relative to the elements defined
    # before each face line, so faces need to know how many came before them.
    for i, line in enumerate(lines):
        if line.startswith(b"v "):
            v_lines.append(line[2:]); v_pos.append(i)
        elif line.startswith(b"f "):
            f_lines.append(line[2:]); f_pos.append(i)
        elif line.startswith(b"vt "):
            vt_lines.append(line[3:]); vt_pos.append(i)
        elif line.startswith(b"vn "):
            vn_lines.append(line[3:]); vn_pos.append(i)
    vertices = _parse_floats(v_lines, 3, src, "'v'")
    if len(vertices) == 0:
        raise MeshFormatError(f"{src}: no vertices ('v' lines) found")
    uvs = _parse_floats(vt_lines, 2, src, "'vt'") if vt_lines else None
    normals = _parse_floats(vn_lines, 3, src, "'vn'") if vn_lines else None
    if not f_lines:
        return Mesh(vertices, np.zeros((0, 3), np.int64))

    corners_per_face = np.array([len(l.split()) for l in f_lines], dtype=np.int64)
    if corners_per_face.min() < 3:
        bad = int(np.argmin(corners_per_face))
        raise MeshFormatError(f"{src}: line {f_pos[bad] + 1}: a face needs at least 3 corners, found {corners_per_face[bad]}")
    f_joined = b" ".join(f_lines)
    tokens = f_joined.split()
    n_slash = {t.count(b"/") for t in tokens[:: max(1, len(tokens) // 1000)]}
    n_slash |= {tokens[-1].count(b"/")}
    total_slash = f_joined.count(b"/")
    if len(n_slash) != 1 or total_slash != len(tokens) * next(iter(n_slash)):
        raise MeshFormatError(f"{src}: faces mix corner forms (v, v/vt, v//vn, v/vt/vn); expected one form per file")
    ns = next(iter(n_slash))
    try:
        if ns == 0:
            cols = np.array(tokens, dtype=np.int64)[:, None]
        else:
            joined = b" ".join(tokens).replace(b"//", b"/0/").replace(b"/", b" ")
            cols = np.array(joined.split(), dtype=np.int64).reshape(len(tokens), -1)
    except ValueError as e:
        raise MeshFormatError(f"{src}: could not parse face indices ({e})") from None
    # Per-corner counts of elements defined before the corner's face line (for negative indices).
    face_of_corner = np.repeat(np.arange(len(f_lines)), corners_per_face)
    fpos = np.asarray(f_pos)[face_of_corner]

    def resolve(idx: np.ndarray, pos: list[int], what: str) -> np.ndarray:
        if (idx == 0).any():
            raise MeshFormatError(f"{src}: {what} index 0 found; OBJ indices start at 1 (or are negative)")
        before = np.searchsorted(np.asarray(pos, dtype=np.int64), fpos)
        return np.where(idx > 0, idx - 1, before + idx)

    vi = resolve(cols[:, 0], v_pos, "vertex")
    ti = None
    if cols.shape[1] >= 2 and uvs is not None and (cols[:, 1] != 0).all():
        ti = resolve(cols[:, 1], vt_pos, "texture")
    ni = None
    if cols.shape[1] == 3 and normals is not None and (cols[:, 2] != 0).all():
        ni = resolve(cols[:, 2], vn_pos, "normal")

    # Fan triangulation in file order: triangle k of a polygon starting at corner s is
    # (s, s+k+1, s+k+2).
    ntri = corners_per_face - 2
    start = np.cumsum(corners_per_face) - corners_per_face
    first = np.repeat(start, ntri)
    k = np.arange(int(ntri.sum())) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    corner = np.stack([first, first + k + 1, first + k + 2], axis=1)
    faces = vi[corner]
    _check_range(faces, len(vertices), "face vertex", src)
    uv_faces = None
    if ti is not None:
        uv_faces = ti[corner]
        _check_range(uv_faces, len(uvs), "face UV", src)
    else:
        uvs = None
    vnormals = None
    if ni is not None:
        _check_range(ni, len(normals), "face normal", src)
        # Keep file normals only when every vertex uses one normal consistently.
        per_vertex = np.full(len(vertices), -1, dtype=np.int64)
        per_vertex[vi] = ni
        if (per_vertex >= 0).all() and (per_vertex[vi] == ni).all():
            vnormals = normals[per_vertex]
    return Mesh(vertices, faces, uvs, uv_faces, vnormals)


def _fmt_rows(prefix: str, a: np.ndarray, fmt: str) -> bytes:
    if len(a) == 0:
        return b""
    row = prefix + " ".join([fmt] * a.shape[1]) + "\n"
    return ((row * len(a)) % tuple(a.reshape(-1).tolist())).encode()


def _obj_bytes(mesh: Mesh) -> bytes:
    parts = [b"# written by face3d\n", _fmt_rows("v ", mesh.vertices, "%.17g")]
    if mesh.uvs is not None:
        parts.append(_fmt_rows("vt ", mesh.uvs, "%.17g"))
    if mesh.normals is not None:
        parts.append(_fmt_rows("vn ", mesh.normals, "%.17g"))
    f = mesh.faces + 1
    if mesh.uvs is not None and mesh.normals is not None:
        cols = np.stack([f, mesh.uv_faces + 1, f], -1).reshape(len(f), 9)
        parts.append(_face_rows(cols, 3))
    elif mesh.uvs is not None:
        parts.append(_face_rows(np.stack([f, mesh.uv_faces + 1], -1).reshape(len(f), 6), 2))
    elif mesh.normals is not None:
        parts.append(_face_rows(np.stack([f, f], -1).reshape(len(f), 6), 2, skip_vt=True))
    else:
        parts.append(_fmt_rows("f ", f, "%d"))
    return b"".join(parts)


def _face_rows(cols: np.ndarray, per_corner: int, skip_vt: bool = False) -> bytes:
    sep = "//" if skip_vt else "/"
    corner = sep.join(["%d"] * per_corner)
    row = "f " + " ".join([corner] * 3) + "\n"
    return ((row * len(cols)) % tuple(cols.reshape(-1).tolist())).encode()


def write_obj(path: str | Path, mesh: Mesh) -> None:
    """Write ``mesh`` as OBJ atomically (same as ``save_mesh`` for a ``.obj`` path)."""
    save_mesh(Path(path), mesh)


# ----------------------------------------------------------------------------------- PLY
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_UV_NAMES = (("s", "t"), ("u", "v"), ("texture_u", "texture_v"))


def _read_ply(path: Path) -> Mesh:
    src = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MeshFormatError(f"{src}: unreadable ({e})") from e
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise MeshFormatError(f"{src}: not a PLY file (expected a 'ply' ... 'end_header' header)")
    body_start = data.index(b"\n", end) + 1
    header = data[:end].decode("latin1").splitlines()
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for line in header:
        tok = line.split()
        if not tok:
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise MeshFormatError(f"{src}: property before any element in the PLY header")
            if tok[1] == "list":
                elements[-1][2].append((tok[4], "list", _ply_type(tok[2], src), _ply_type(tok[3], src)))
            else:
                elements[-1][2].append((tok[2], "scalar", _ply_type(tok[1], src), None))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise MeshFormatError(f"{src}: unsupported PLY format {fmt!r}")
    parsed: dict[str, dict[str, np.ndarray]] = {}
    try:
        if fmt == "ascii":
            _ply_ascii(data[body_start:], elements, parsed, src)
        else:
            _ply_binary(data, body_start, "<" if fmt == "binary_little_endian" else ">", elements, parsed, src)
    except (ValueError, IndexError) as e:
        raise MeshFormatError(f"{src}: truncated or corrupt PLY body ({e})") from None
    vert = parsed.get("vertex")
    if vert is None or not all(k in vert for k in "xyz"):
        raise MeshFormatError(f"{src}: no vertex element with x, y, z properties")
    vertices = np.stack([vert["x"], vert["y"], vert["z"]], 1).astype(np.float64)
    normals = None
    if all(k in vert for k in ("nx", "ny", "nz")):
        normals = np.stack([vert["nx"], vert["ny"], vert["nz"]], 1).astype(np.float64)
    face = parsed.get("face", {})
    faces, uvs, uv_faces = np.zeros((0, 3), np.int64), None, None
    idx_name = next((k for k in ("vertex_indices", "vertex_index") if k in face), None)
    if idx_name is not None:
        counts, flat = face[idx_name]
        faces, corner = _fan(counts, flat)
        if "texcoord" in face:
            tc_counts, tc = face["texcoord"]
            if not np.array_equal(tc_counts, 2 * counts):
                raise MeshFormatError(f"{src}: face texcoord lists must hold 2 numbers per corner")
            uv_all = tc.reshape(-1, 2).astype(np.float64)
            uvs, inv = np.unique(uv_all, axis=0, return_inverse=True)
            uv_faces = inv.reshape(-1)[corner]
    if uvs is None:
        for un, vn in _UV_NAMES:
            if un in vert and vn in vert:
                uvs = np.stack([vert[un], vert[vn]], 1).astype(np.float64)
                uv_faces = faces.copy()
                break
    return Mesh(vertices, faces, uvs, uv_faces, normals)


def _ply_type(name: str, src: str) -> str:
    if name not in _PLY_TYPES:
        raise MeshFormatError(f"{src}: unknown PLY property type {name!r}")
    return _PLY_TYPES[name]


def _fan(counts: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polygon corner lists -> fan triangles (F, 3) and the corner index of each triangle slot."""
    counts = counts.astype(np.int64)
    if counts.size and counts.min() < 3:
        raise ValueError(f"a face has {int(counts.min())} corners; at least 3 are needed")
    ntri = counts - 2
    start = np.cumsum(counts) - counts
    first = np.repeat(start, ntri)
    k = np.arange(int(ntri.sum())) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    corner = np.stack([first, first + k + 1, first + k + 2], 1)
    return flat.astype(np.int64)[corner], corner


def _ply_ascii(body: bytes, elements, parsed, src) -> None:
    lines = body.split(b"\n")
    pos = 0
    for name, n, props in elements:
        rows = lines[pos:pos + n]
        pos += n
        if len(rows) < n:
            raise ValueError(f"element {name!r}: expected {n} rows, found {len(rows)}")
        if all(p[1] == "scalar" for p in props):
            arr = np.array(b" ".join(rows).split(), dtype=np.float64).reshape(n, len(props))
            parsed[name] = {p[0]: arr[:, i] for i, p in enumerate(props)}
            continue
        # Rows with list properties: vectorised when every row has the same token count
        # (all triangles, or all quads), else row by row.
        toks = [r.split() for r in rows]
        out: dict[str, list] = {p[0]: [] for p in props}
        lens = {len(t) for t in toks}
        if len(lens) == 1 and n:
            arr = np.array(toks, dtype=np.float64)
            c = 0
            for p in props:
                if p[1] == "scalar":
                    out[p[0]] = arr[:, c]; c += 1
                else:
                    k = int(arr[0, c])
                    out[p[0]] = (np.full(n, k, np.int64), arr[:, c + 1:c + 1 + k].reshape(-1))
                    c += 1 + k
            parsed[name] = out
            continue
        for t in toks:
            c = 0
            for p in props:
                if p[1] == "scalar":
                    out[p[0]].append(float(t[c])); c += 1
                else:
                    k = int(t[c])
                    out[p[0]].append([float(x) for x in t[c + 1:c + 1 + k]]); c += 1 + k
        res = {}
        for p in props:
            if p[1] == "scalar":
                res[p[0]] = np.asarray(out[p[0]])
            else:
                lst = out[p[0]]
                res[p[0]] = (np.array([len(x) for x in lst], np.int64),
                             np.concatenate([np.asarray(x) for x in lst]) if lst else np.zeros(0))
        parsed[name] = res


def _ply_binary(data: bytes, pos: int, endian: str, elements, parsed, src) -> None:
    for name, n, props in elements:
        if all(p[1] == "scalar" for p in props):
            dt = np.dtype([(p[0], endian + p[2]) for p in props])
            arr = np.frombuffer(data, dtype=dt, count=n, offset=pos)
            pos += n * dt.itemsize
            parsed[name] = {p[0]: arr[p[0]] for p in props}
            continue
        # Fast path: every row's lists have the lengths of the first row's (a pure triangle or
        # quad mesh), so the element is a fixed-size record array; check the counts to be sure.
        fields, off, lens = [], pos, []
        for i, p in enumerate(props):
            if p[1] == "scalar":
                fields.append((f"p{i}", endian + p[2])); off += np.dtype(p[2]).itemsize
            else:
                k = int(np.frombuffer(data, dtype=endian + p[2], count=1, offset=off)[0]) if n else 0
                fields += [(f"c{i}", endian + p[2]), (f"p{i}", endian + p[3], (k,))]
                off += np.dtype(p[2]).itemsize + k * np.dtype(p[3]).itemsize
                lens.append(k)
        dt = np.dtype(fields)
        ok = pos + n * dt.itemsize <= len(data)
        if ok:
            arr = np.frombuffer(data, dtype=dt, count=n, offset=pos)
            li = 0
            for i, p in enumerate(props):
                if p[1] == "list":
                    ok &= bool((arr[f"c{i}"] == lens[li]).all()); li += 1
        if ok:
            pos += n * dt.itemsize
            out = {}
            li = 0
            for i, p in enumerate(props):
                if p[1] == "scalar":
                    out[p[0]] = arr[f"p{i}"]
                else:
                    out[p[0]] = (np.full(n, lens[li], np.int64), arr[f"p{i}"].reshape(-1)); li += 1
            parsed[name] = out
            continue
        # Mixed polygon sizes: the record offsets depend on every previous count, so walk the
        # rows (only for mixed-polygon binary PLY; triangle/quad meshes take the path above).
        lists: dict[str, tuple[list, list]] = {p[0]: ([], []) for p in props}
        for _ in range(n):
            for p in props:
                if p[1] == "scalar":
                    v = np.frombuffer(data, dtype=endian + p[2], count=1, offset=pos)[0]
                    lists[p[0]][1].append(v); pos += np.dtype(p[2]).itemsize
                else:
                    k = int(np.frombuffer(data, dtype=endian + p[2], count=1, offset=pos)[0])
                    pos += np.dtype(p[2]).itemsize
                    vals = np.frombuffer(data, dtype=endian + p[3], count=k, offset=pos)
                    pos += k * np.dtype(p[3]).itemsize
                    lists[p[0]][0].append(k); lists[p[0]][1].append(vals)
        out = {}
        for p in props:
            c, vals = lists[p[0]]
            if p[1] == "scalar":
                out[p[0]] = np.asarray(vals)
            else:
                out[p[0]] = (np.asarray(c, np.int64), np.concatenate(vals) if vals else np.zeros(0))
        parsed[name] = out


def _ply_bytes(mesh: Mesh, binary: bool) -> bytes:
    V, F = mesh.n_vertices, mesh.n_faces
    per_vertex_uv = (mesh.uvs is not None and len(mesh.uvs) == V
                     and np.array_equal(mesh.uv_faces, mesh.faces))
    vfields = [("x", "f8"), ("y", "f8"), ("z", "f8")]
    if mesh.normals is not None:
        vfields += [("nx", "f8"), ("ny", "f8"), ("nz", "f8")]
    if per_vertex_uv:
        vfields += [("s", "f8"), ("t", "f8")]
    corner_uv = mesh.uvs is not None and not per_vertex_uv
    head = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", "comment written by face3d",
            f"element vertex {V}"]
    head += [f"property double {n}" for n, _ in vfields]
    head += [f"element face {F}", "property list uchar int vertex_indices"]
    if corner_uv:
        head.append("property list uchar double texcoord")
    head.append("end_header")
    vcols = [mesh.vertices]
    if mesh.normals is not None:
        vcols.append(mesh.normals)
    if per_vertex_uv:
        vcols.append(mesh.uvs)
    vdata = np.concatenate(vcols, 1)
    tc = mesh.uvs[mesh.uv_faces].reshape(F, 6) if corner_uv else None
    out = ["\n".join(head).encode() + b"\n"]
    if binary:
        varr = np.zeros(V, dtype=np.dtype([(n, "<f8") for n, _ in vfields]))
        for i, (n, _) in enumerate(vfields):
            varr[n] = vdata[:, i]
        ff = [("n", "u1"), ("v", "<i4", (3,))]
        if corner_uv:
            ff += [("m", "u1"), ("t", "<f8", (6,))]
        farr = np.zeros(F, dtype=np.dtype(ff))
        farr["n"] = 3
        farr["v"] = mesh.faces
        if corner_uv:
            farr["m"] = 6
            farr["t"] = tc
        out += [varr.tobytes(), farr.tobytes()]
    else:
        out.append(_fmt_rows("", vdata, "%.17g"))
        if corner_uv:
            cols = np.concatenate([np.full((F, 1), 3.0), mesh.faces, np.full((F, 1), 6.0), tc], 1)
            row = "%d %d %d %d %d " + " ".join(["%.17g"] * 6) + "\n"
            out.append(((row * F) % tuple(cols.reshape(-1).tolist())).encode())
        else:
            out.append(_fmt_rows("3 ", mesh.faces, "%d"))
    return b"".join(out)


# ----------------------------------------------------------------------------------- GLB
def _read_glb(path: Path) -> Mesh:
    import trimesh  # lazy: only GLB needs it

    try:
        scene = trimesh.load(str(path), file_type="glb", process=False, force="scene")
    except Exception as e:
        raise MeshFormatError(f"{path}: unreadable GLB ({type(e).__name__}: {e})") from e
    geoms = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh)] if hasattr(scene, "dump") else []
    if len(geoms) != 1:
        raise MeshFormatError(
            f"{path}: expected exactly one triangle mesh in the GLB (vertex order is only defined for one), "
            f"found {len(geoms)}"
        )
    g = geoms[0]
    uvs = None
    uv = getattr(g.visual, "uv", None)
    if uv is not None and len(uv) == len(g.vertices):
        uvs = np.asarray(uv, dtype=np.float64)
    return Mesh(np.asarray(g.vertices, np.float64), np.asarray(g.faces, np.int64), uvs,
                np.asarray(g.faces, np.int64) if uvs is not None else None)


def _glb_bytes(mesh: Mesh, path: Path) -> bytes:
    import trimesh  # lazy

    visual = None
    if mesh.uvs is not None:
        if not (len(mesh.uvs) == mesh.n_vertices and np.array_equal(mesh.uv_faces, mesh.faces)):
            raise ValueError(
                f"{path}: GLB stores one UV per vertex, but this mesh has UV seams ({len(mesh.uvs)} UVs for "
                f"{mesh.n_vertices} vertices); write OBJ to keep both vertex order and UVs, or drop the UVs"
            )
        visual = trimesh.visual.TextureVisuals(uv=mesh.uvs)
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, visual=visual, process=False, validate=False)
    return tm.export(file_type="glb")
