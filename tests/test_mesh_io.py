"""Mesh files: OBJ/PLY/GLB round trips keep vertex order, faces and UVs; OBJ parsing details;
errors name the file."""
from __future__ import annotations

import numpy as np
import pytest

from face3d.geometry.mesh_io import Mesh, MeshFormatError, load_mesh, save_mesh


def _mesh(seams: bool = True, seed: int = 0) -> Mesh:
    rng = np.random.default_rng(seed)
    v = rng.normal(0, 50, (40, 3))  # unsorted positions: any reordering would show
    f = np.stack([rng.permutation(40)[:3] for _ in range(60)])
    if seams:
        uvs = rng.random((70, 2))
        uvf = rng.integers(0, 70, (60, 3))
    else:
        uvs, uvf = rng.random((40, 2)), f.copy()
    return Mesh(v, f, uvs, uvf)


@pytest.mark.parametrize("name,binary", [("m.obj", True), ("m.ply", True), ("m.ply", False)])
def test_round_trip_keeps_order_faces_and_seamed_uvs(tmp_path, name, binary):
    m = _mesh()
    save_mesh(tmp_path / name, m, binary=binary)
    r = load_mesh(tmp_path / name)
    np.testing.assert_array_equal(r.vertices, m.vertices)  # float64 written exactly
    np.testing.assert_array_equal(r.faces, m.faces)
    np.testing.assert_array_equal(r.uvs[r.uv_faces], m.uvs[m.uv_faces])  # per-corner UVs identical
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temp files left behind


def test_glb_round_trip_per_vertex_uvs_and_seams_refused(tmp_path):
    m = _mesh(seams=False)
    save_mesh(tmp_path / "m.glb", m)
    r = load_mesh(tmp_path / "m.glb")
    np.testing.assert_allclose(r.vertices, m.vertices, rtol=1e-6, atol=1e-4)  # float32 in glTF
    np.testing.assert_array_equal(r.faces, m.faces)
    np.testing.assert_allclose(r.uvs, m.uvs, atol=1e-6)
    with pytest.raises(ValueError, match="UV seams"):
        save_mesh(tmp_path / "s.glb", _mesh(seams=True))
    assert not (tmp_path / "s.glb").exists()


def test_obj_forms_negative_indices_polygons_comments_and_tabs(tmp_path):
    p = tmp_path / "poly.obj"
    p.write_text(
        "# comment\no thing\nv 0 0 0\nv 1 0 0 0.5 0.5 0.5\nv 1 1 0\nv 0 1 0\nv\t0.5 1.5 0\n"
        "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\nvt 0.5 1\nvn 0 0 1\n"
        "g part\ns off\nf 1/1/1 2/2/1 3/3/1 4/4/1\n"
        "f -2/-2/1 -3/-3/1 -1/-1/1\r\n"  # relative indices, CRLF
    )
    m = load_mesh(p)
    assert m.vertices.shape == (5, 3)
    assert m.faces.tolist() == [[0, 1, 2], [0, 2, 3], [3, 2, 4]]
    assert m.uv_faces.tolist() == [[0, 1, 2], [0, 2, 3], [3, 2, 4]]
    np.testing.assert_array_equal(m.normals, np.tile([0.0, 0, 1], (5, 1)))
    q = tmp_path / "plain.obj"
    q.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1//1 2//1 3//1\nf 1 2 4\n")
    with pytest.raises(MeshFormatError, match="mix corner forms"):
        load_mesh(q)


def test_real_ict_obj_order_and_quads(tmp_path):
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "shared" / "ict_facekit_sample" / "generic_neutral_mesh.obj"
    if not src.is_file():
        pytest.skip(f"ICT sample not found at {src}")
    m = load_mesh(src)
    # 25,836 quads + 548 triangles, fan triangulated; first file line: v 0 -2.48251 11.8387
    assert m.vertices.shape == (26719, 3) and m.faces.shape == (2 * 25836 + 548, 3)
    np.testing.assert_array_equal(m.vertices[0], [0, -2.48251, 11.8387])
    assert m.faces[:2].tolist() == [[873, 11, 870], [873, 870, 872]]  # f 874/1 12/2 871/3 873/4


def test_errors_name_the_file(tmp_path):
    with pytest.raises(MeshFormatError, match=r"unsupported mesh extension '\.stl'"):
        load_mesh(tmp_path / "a.stl")
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        load_mesh(tmp_path / "missing.obj")
    p = tmp_path / "empty.obj"
    p.write_text("# nothing\n")
    with pytest.raises(MeshFormatError, match="empty.obj: no vertices"):
        load_mesh(p)
    p = tmp_path / "range.obj"
    p.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n")
    with pytest.raises(MeshFormatError, match=r"range.obj: face vertex index out of range.*\[0, 3\)"):
        load_mesh(p)
    p = tmp_path / "trunc.ply"
    save_mesh(p, _mesh())
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(MeshFormatError, match="trunc.ply"):
        load_mesh(p)
    with pytest.raises(MeshFormatError, match="face vertex index out of range"):
        save_mesh(tmp_path / "bad.obj", Mesh(np.zeros((3, 3)), [[0, 1, 3]]))
