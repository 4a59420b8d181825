"""NoW protocol: closest points on triangles, zero error for a transformed copy, known offsets."""
from __future__ import annotations

import torch

from face3d.geometry.rotations import axis_angle_to_matrix
from face3d.reconstruct.now import (
    NowConfig, closest_point_on_triangles, crop_scan, now_error, point_mesh_distance,
)


def _sphere(radius: float = 50.0, subdivisions: int = 3):
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return torch.tensor(s.vertices, dtype=torch.float64), torch.tensor(s.faces, dtype=torch.int64)


def test_closest_point_matches_dense_sampling():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(50, 3, generator=g, dtype=torch.float64) for _ in range(3))
    p = torch.randn(50, 3, generator=g, dtype=torch.float64) * 2
    q, bary = closest_point_on_triangles(p, a, b, c)
    # Brute force over a dense barycentric grid on each triangle.
    n = 120
    i, j = torch.meshgrid(torch.arange(n + 1.0), torch.arange(n + 1.0), indexing="ij")
    keep = (i + j) <= n
    u, v = (i[keep] / n).double(), (j[keep] / n).double()
    pts = a[:, None] * (1 - u - v)[None, :, None] + b[:, None] * u[None, :, None] + c[:, None] * v[None, :, None]
    brute = (pts - p[:, None]).norm(dim=-1).min(1).values
    d = (q - p).norm(dim=-1)
    assert torch.all(d <= brute + 1e-9)  # never worse than any sampled point
    assert torch.all(brute - d < 0.05 * (b - a).norm(dim=-1).clamp_min(1))  # and as good as the grid allows
    assert torch.allclose(bary.sum(-1), torch.ones(50, dtype=torch.float64))
    assert bary.min() >= -1e-12


def test_point_mesh_distance_of_offset_sphere():
    V, F = _sphere()
    d, tri, bary = point_mesh_distance(V * 1.02, V, F)  # vertices pushed out by 1 mm
    assert torch.allclose(d, torch.ones_like(d), atol=1e-9)


def test_self_comparison_under_random_similarity_is_zero():
    V, F = _sphere()
    lm = V[[0, 5, 17, 40, 80, 120, 200]]
    g = torch.Generator().manual_seed(1)
    R = axis_angle_to_matrix(torch.randn(1, 3, generator=g, dtype=torch.float64))[0]
    t = torch.randn(3, generator=g, dtype=torch.float64) * 30
    s = 1.37
    scan = s * V @ R.T + t
    r = now_error(V, F, lm, scan, s * lm @ R.T + t, NowConfig(crop_radius=100.0))
    assert r.mean < 1e-9 and r.median < 1e-9
    assert abs(r.s - s) < 1e-9


def test_known_offset_metric_and_nonmetric():
    V, F = _sphere()
    lm = V[[0, 5, 17, 40, 80, 120, 200]]
    R = axis_angle_to_matrix(torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64))[0]
    t = torch.tensor([5.0, -3.0, 2.0], dtype=torch.float64)
    scan = (V * 1.02) @ R.T + t  # a sphere 1 mm larger
    metric = now_error(V, F, lm, scan, (lm * 1.02) @ R.T + t, NowConfig(scale=False, crop_radius=100.0))
    assert abs(metric.mean - 1.0) < 1e-6 and abs(metric.median - 1.0) < 1e-6  # rigid cannot remove it
    free = now_error(V, F, lm, scan, (lm * 1.02) @ R.T + t, NowConfig(scale=True, crop_radius=100.0))
    assert free.mean < 1e-6 and abs(free.s - 1.02) < 1e-6  # scale absorbs it


def test_icp_refines_a_bad_landmark_alignment():
    V, F = _sphere(subdivisions=3)
    # An ellipsoid so that rotation matters; landmarks on the scan are off by a few mm.
    E = V * torch.tensor([1.0, 1.3, 0.8], dtype=torch.float64)
    lm = E[[0, 5, 17, 40, 80, 120, 200]]
    g = torch.Generator().manual_seed(2)
    noisy = lm + torch.randn(7, 3, generator=g, dtype=torch.float64) * 3
    r0 = now_error(E, F, lm, E, noisy, NowConfig(scale=False, iterations=0, crop_radius=100.0))
    r = now_error(E, F, lm, E, noisy, NowConfig(scale=False, crop_radius=100.0))
    assert r0.mean > 1.0 and r.mean < 0.1 * r0.mean  # 1.62 -> 0.083 mm in 30 iterations


def test_crop_follows_now_definition():
    # Landmarks: outer eyes 100 mm apart, inner corners at (+-15, 0, 0), nose bottom 50 mm below.
    lm = torch.tensor([[-50.0, 0, 0], [-15, 0, 0], [15, 0, 0], [50, 0, 0], [0, -50, 0], [-25, -70, 0], [25, -70, 0]])
    centre = torch.tensor([0.0, -35.0, 0.0])  # bottom + 0.3 (bridge - bottom)
    radius = 1.4 * (100 + 50) / 2  # 105 mm
    pts = torch.stack([centre + torch.tensor([radius - 0.1, 0, 0]), centre + torch.tensor([0, radius + 0.1, 0])])
    assert crop_scan(pts, lm).tolist() == [True, False]


def test_eval_now_command_on_a_transformed_copy(tmp_path, capsys):
    from face3d.cli import build_parser, run
    from face3d.geometry.mesh_io import Mesh, save_mesh
    from face3d.reconstruct.now import model_now_landmarks
    from face3d.models.toy import toy_model

    model = toy_model()
    model.save_npz(tmp_path / "toy.npz")
    V = model.template.double()
    R = axis_angle_to_matrix(torch.tensor([[0.1, 0.4, -0.2]], dtype=torch.float64))[0]
    t = torch.tensor([3.0, -8.0, 20.0], dtype=torch.float64)
    save_mesh(tmp_path / "pred.obj", Mesh(V.numpy(), model.faces.numpy()))
    # The toy's landmark and joint vertices float off its surface; the "scan" is the surface only.
    n_shell = int(model.faces.max()) + 1
    save_mesh(tmp_path / "scan.ply", Mesh((V[:n_shell] @ R.T + t).numpy(), model.faces.numpy()))
    lm = model_now_landmarks(model, model.template).double() @ R.T + t
    (tmp_path / "scan_lm.txt").write_text("\n".join(" ".join(f"{x:.9f}" for x in row) for row in lm.tolist()))
    code = run(build_parser(modules=("face3d.reconstruct.cli",)), [
        "eval-now", "--pred", str(tmp_path / "pred.obj"), "--scan", str(tmp_path / "scan.ply"),
        "--scan-landmarks", str(tmp_path / "scan_lm.txt"), "--model", f"npz:{tmp_path / 'toy.npz'}", "--metric"])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    mean = float(last.split("mean ")[1].split()[0])
    assert mean < 1e-3, last
