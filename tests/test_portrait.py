"""Neural portraits: shell sampler, canonical mapping, training, round trips, bad input."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import face3d
from avatars.portrait.data import PortraitData, load_track, prepare
from avatars.portrait.embedding import MeshEmbedding
from face3d.geometry.closest import closest_point_on_triangles
from avatars.portrait.model import Portrait, PortraitConfig, RayBatch, pixel_rays
from avatars.portrait.train import TrainConfig, load_portrait, psnr, save_portrait, train

TINY = PortraitConfig(shell_mm=12.0, inner_mm=3.0, samples=8, planes=32, channels=8, hidden=32, exp_dim=4, app_dim=2)


@pytest.fixture(scope="module")
def model():
    return face3d.load_model("character")


def _clip(model, T=6, S=40, seed=0) -> PortraitData:
    """A tiny lit clip of the character head turning, rendered with known parameters."""
    from face3d.reconstruct.camera import make_camera
    from face3d.render import Renderer

    t = torch.arange(T, dtype=torch.float32)
    rot = torch.stack((0.1 * torch.sin(t), 0.4 * torch.sin(0.7 * t), torch.zeros(T)), 1)
    tr = torch.tensor([0.0, -20.0, -800.0]).expand(T, 3).clone()
    exp = torch.zeros(T, model.n_expression)
    exp[:, 0] = 0.5 + 0.5 * torch.sin(t)
    f = 0.5 * S / math.tan(math.radians(13))
    cam = make_camera(torch.full((T,), f), S, S)
    with torch.no_grad():
        v = model(expression=exp, rotation=rot, translation=tr).vertices
        out = Renderer()(v, model.faces, cam, light_dir=torch.tensor([0.6, 0.4, 1.0]))
    img = out.rgb + (1 - out.alpha) * torch.tensor([0.2, 0.3, 0.5])
    return PortraitData(frames=(img * 255).round().byte().numpy(), masks=out.alpha[..., 0].numpy(),
                        identity=np.zeros(model.n_identity, np.float32), expression=exp.numpy(),
                        jaw=np.zeros((T, 3), np.float32), rotation=rot.numpy(), translation=tr.numpy(),
                        K=cam.K[0].numpy().astype(np.float64), n_train=T - 1, model="character")


def _portrait(model, data, cfg=TINY):
    from avatars.portrait.data import background_image

    return Portrait(model, torch.zeros(model.n_identity), cfg, data.n_train, torch.from_numpy(background_image(data)),
                    torch.tensor(data.K, dtype=torch.float32))


def _brute_distance(points, verts, faces):
    """Exact point-to-mesh distance (every triangle), chunked."""
    a, b, c = (verts[faces[:, i]] for i in range(3))
    out = []
    for p in points.split(64):
        q, _ = closest_point_on_triangles(p[:, None], a[None], b[None], c[None])
        out.append((q - p[:, None]).norm(dim=-1).min(1).values)
    return torch.cat(out)


def test_closest_point_on_triangle_matches_dense_search():
    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, 200, 3, generator=g).unbind(0)
    p = torch.randn(200, 3, generator=g) * 2
    q, bary = closest_point_on_triangles(p, a, b, c)
    assert torch.allclose((a * bary[:, :1] + b * bary[:, 1:2] + c * bary[:, 2:]), q, atol=1e-5)
    assert bool((bary >= -1e-6).all()) and torch.allclose(bary.sum(1), torch.ones(200), atol=1e-5)
    # dense barycentric grid over each triangle: nothing on it is closer than the returned point
    n = 60
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = (i + j) <= n
    u, v = i[keep].float() / n, j[keep].float() / n
    grid = a[:, None] + u[None, :, None] * (b - a)[:, None] + v[None, :, None] * (c - a)[:, None]
    dense = (grid - p[:, None]).norm(dim=-1).min(1).values
    got = (q - p).norm(dim=-1)
    assert bool((got <= dense + 1e-4).all())
    assert float((dense - got).max()) < 0.05  # and the grid gets close to it


def test_canonical_mapping_sends_surface_points_to_one_canonical_point(model):
    g = torch.Generator().manual_seed(1)
    ident = torch.randn(1, model.n_identity, generator=g) * model.identity_std
    can = model(identity=ident).vertices[0]
    emb = MeshEmbedding(model.faces, can, k=8)
    F = model.faces.long()
    f = torch.randint(0, F.shape[0], (3000,), generator=g)
    bary = torch.rand(3000, 3, generator=g) + 0.05
    bary = bary / bary.sum(1, keepdim=True)
    mapped = []
    for seed in (2, 3):
        gg = torch.Generator().manual_seed(seed)
        v = model(identity=ident, expression=torch.rand(1, model.n_expression, generator=gg) * 0.8,
                  jaw=torch.tensor([[0.25, 0.0, 0.0]]), rotation=torch.randn(1, 3, generator=gg) * 0.3,
                  translation=torch.tensor([[10.0, -5.0, -700.0]])).vertices[0]
        x = (v[F[f]] * bary[..., None]).sum(1)
        xc, e, _ = emb.map(x, v)
        mapped.append(xc)
        # a point 5 mm out along the face normal stays 5 mm out in canonical space
        n = torch.nn.functional.normalize(torch.linalg.cross(v[F[f, 1]] - v[F[f, 0]], v[F[f, 2]] - v[F[f, 0]]), dim=-1)
        xc5, e5, _ = emb.map(x[:200] + 5 * n[:200], v)
        assert float((e5.distance - 5).abs().median()) < 0.05
    truth = (can[F[f]] * bary[..., None]).sum(1)
    for xc in mapped:
        err = (xc - truth).norm(dim=1)
        assert float((err < 1e-3).float().mean()) > 0.99, err.max()
    # the two frames differ by several mm, yet map to the same canonical points
    assert float((mapped[0] - mapped[1]).norm(dim=1).median()) < 1e-3


def test_torch_centroid_search_matches_the_kdtree(model):
    """The torch search (the CUDA default) returns the k-d tree's candidates, so the embedding is
    the same; run on the CPU here with search="torch" forced."""
    import avatars.portrait.embedding as E

    g = torch.Generator().manual_seed(4)
    can = model().vertices[0]
    v = model(expression=torch.rand(1, model.n_expression, generator=g) * 0.8, jaw=torch.tensor([[0.2, 0.0, 0.0]]),
              rotation=torch.tensor([[0.1, 0.5, 0.0]]), translation=torch.tensor([[5.0, -20.0, -800.0]])).vertices[0]
    F = model.faces.long()
    f = torch.randint(0, F.shape[0], (1500,), generator=g)
    b = torch.rand(1500, 3, generator=g)
    n = torch.nn.functional.normalize(torch.linalg.cross(v[F[f, 1]] - v[F[f, 0]], v[F[f, 2]] - v[F[f, 0]]), dim=-1)
    x = ((v[F[f]] * (b / b.sum(1, keepdim=True))[..., None]).sum(1)) + n * (torch.rand(1500, 1, generator=g) * 30 - 8)
    kd = MeshEmbedding(model.faces, can, k=4, search="kdtree")
    tt = MeshEmbedding(model.faces, can, k=4, search="torch")
    assert kd.search_for(x) == "kdtree" and MeshEmbedding(model.faces, can).search_for(x) == "kdtree"  # auto on CPU
    budget = E.CANDIDATE_BUDGET
    try:
        E.CANDIDATE_BUDGET = 100 * F.shape[0]  # several blocks: the chunking must not change the answer
        a, c = tt.nearest_centroids(x, v, key=0), kd.nearest_centroids(x, v, key=0)
    finally:
        E.CANDIDATE_BUDGET = budget
    assert a.shape == (1500, 4) and a.dtype == torch.int64
    assert bool((a == c).all())
    # and so the embedding itself, which feeds the field
    ea, ec = tt.query(x, v), kd.query(x, v)
    assert torch.equal(ea.triangle, ec.triangle) and torch.equal(ea.local, ec.local)
    # the nearest really is nearest (brute force over the centroids)
    cent = v[F].mean(1)
    d = (x[:50, None] - cent[None]).norm(dim=-1)
    assert torch.allclose(d.gather(1, a[:50, :1])[:, 0], d.min(1).values)
    with pytest.raises(ValueError, match="search"):
        MeshEmbedding(model.faces, can, search="gpu")


def test_training_stops_at_its_time_budget_and_keeps_the_callers_model(model, tmp_path):
    torch.set_num_threads(1)
    data = _clip(model, T=3, S=24)
    before = {k: t.clone() for k, t in model.state_dict().items()}
    tc = TrainConfig(steps=50, rays=64, frames_per_step=1, size=data.size)
    p = train(data, tmp_path / "t", model, TINY, tc, progress=False, device="cpu", max_seconds=0.0)
    assert p.meta["steps_done"] == 1 and p.meta["steps"] == 50  # stopped after the first step
    assert (tmp_path / "t" / "portrait.pt").is_file() and p.device.type == "cpu"
    q = load_portrait(tmp_path / "t", model)
    assert q.meta["steps_done"] == 1
    for k, t in model.state_dict().items():
        assert torch.equal(t, before[k]), k
    with pytest.raises(ValueError, match="max_seconds"):
        from face3d.distributed import DistInfo

        train(data, tmp_path / "u", model, TINY, tc, progress=False, max_seconds=10.0,
              dist=DistInfo(rank=0, world=2))


def test_shell_sampler_returns_only_points_within_the_shell(model):
    data = _clip(model, T=2, S=32)
    p = _portrait(model, data)
    prm = data.params(0)
    v = p.posed(prm["expression"][None], prm["jaw"][None], prm["rotation"][None], prm["translation"][None])
    cam = data.camera()
    mask, near, far = p.shell_intervals(v, cam)
    assert bool(mask.any()) and bool((far[mask] > near[mask]).all())
    # the shell covers the head's silhouette and more
    from face3d.render import Renderer

    sil = Renderer()(v, model.faces, cam, antialias=False).alpha[0, ..., 0] > 0
    assert bool((mask[0] | ~sil).all()) and int(mask.sum()) > int(sil.sum())
    pix = mask[0].reshape(-1).nonzero()[:, 0]
    o, d = pixel_rays(cam.K[0], cam.R[0], cam.t[0], 32, 32, pix)
    rays = RayBatch(pix, o, d, near[0].reshape(-1)[pix], far[0].reshape(-1)[pix])
    s = p.sample_shell(rays, v[0], jitter=True)
    pts, valid = s["points"], s["valid"]
    assert 0.2 < float(valid.float().mean()) < 1.0
    sel = valid.nonzero()[:, 0][torch.randperm(int(valid.sum()), generator=torch.Generator().manual_seed(0))[:400]]
    true = _brute_distance(pts[sel], v[0], model.faces.long())
    assert float(true.max()) <= TINY.shell_mm + 1e-3
    assert torch.allclose(s["embedded"].distance[sel], true, atol=0.05 * TINY.shell_mm)
    # samples lie on their rays, inside the interval
    z = s["z"]
    assert bool((z >= rays.near[:, None] - 1e-4).all()) and bool((z <= rays.far[:, None] + 1e-4).all())


def test_few_training_steps_raise_psnr_and_checkpoints_resume(model, tmp_path):
    torch.set_num_threads(1)
    data = _clip(model)
    tc = TrainConfig(steps=40, rays=256, frames_per_step=2, size=data.size, lr=2e-2, checkpoint_every=20)

    def score(p):
        cam = data.camera()
        vals = []
        for i in range(data.n_train):
            prm = data.params(i)
            img = p.render_frame(prm["expression"], prm["jaw"], prm["rotation"], prm["translation"], cam,
                                 app=p.field.app.weight[i])["rgb"]
            vals.append(psnr(img, torch.from_numpy(data.frames[i]).float() / 255))
        return float(np.mean(vals))

    torch.manual_seed(tc.seed)
    before = score(_portrait(model, data))
    p = train(data, tmp_path / "a", model, TINY, tc, progress=False)
    after = score(p)
    assert after > before + 2.0, (before, after)
    # the fast path (a proxy pass, then few samples where the proxy found opacity) stays close
    from avatars.portrait.render import camera_for

    cam2 = camera_for(p, 2 * data.size)
    prm = data.params(0)
    exact = p.render_frame(**prm, camera=cam2)["rgb"]
    fast = p.render_frame(**prm, camera=cam2, proxy=data.size // 2)["rgb"]
    assert psnr(fast, exact) > 30.0
    # a run stopped at step 20 and resumed ends with the same weights as the uninterrupted run
    torch.manual_seed(123)  # resuming restores the random state, whatever it is now
    assert train(data, tmp_path / "b", model, TINY, tc, progress=False, stop_at=20) is None
    assert not (tmp_path / "b" / "portrait.pt").exists()
    logs = []
    q = train(data, tmp_path / "b", model, TINY, tc, progress=False, log=logs.append)
    assert any("resuming" in m and "step 20" in m for m in logs)
    for (n, a), (_, b) in zip(p.field.state_dict().items(), q.field.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), n
    for (n, a), (_, b) in zip(p.backdrop.state_dict().items(), q.backdrop.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-5), n


def test_portrait_file_round_trip_renders_the_same(model, tmp_path):
    data = _clip(model, T=3, S=24)
    p = _portrait(model, data)
    with torch.no_grad():
        p.field.planes.normal_(0, 0.5)
        p.backdrop.mlp[-1].weight.normal_(0, 0.5)  # a backdrop that is not the plain background
    p.meta = {"rest_rotation": [0, 0, 0], "rest_translation": [0, -20, -800]}
    save_portrait(p, tmp_path / "portrait.pt", data, p.meta)
    q = load_portrait(tmp_path, model)
    prm = data.params(1)
    a = p.render_frame(prm["expression"], prm["jaw"], prm["rotation"], prm["translation"], data.camera())["rgb"]
    b = q.render_frame(prm["expression"], prm["jaw"], prm["rotation"], prm["translation"], data.camera())["rgb"]
    assert torch.equal(a, b)
    assert float((a - p.background).abs().max()) > 0.05  # the head is actually rendered
    far = (a - p.background).abs().amax(-1) > 0.01
    assert bool(far[0].any() or far[-1].any())  # and the backdrop, not the fixed background, behind it
    with pytest.raises(ValueError, match="identity coefficients"):
        load_portrait(tmp_path, face3d.load_model("builtin"))


def test_sequence_drive_checks_the_model(model, tmp_path):
    from avatars.portrait.render import drive_from_sequence

    data = _clip(model, T=2, S=16)
    p = _portrait(model, data)
    p.meta = {"rest_rotation": [0, 0, 0], "rest_translation": [0, -20, -800]}
    np.savez(tmp_path / "ok.npz", expression=np.zeros((5, model.n_expression)), jaw=np.zeros((5, 3)), fps=25.0)
    d = drive_from_sequence(p, tmp_path / "ok.npz")
    assert d.n_frames == 5 and np.allclose(d.translation, [0, -20, -800])
    np.savez(tmp_path / "bad.npz", expression=np.zeros((5, model.n_expression + 3)), jaw=np.zeros((5, 3)))
    with pytest.raises(ValueError, match=f"expected expression of shape \\(T, {model.n_expression}\\)"):
        drive_from_sequence(p, tmp_path / "bad.npz")


def test_baked_texture_recovers_vertex_colours(model):
    from avatars.portrait.baseline import texture_from_frames
    from face3d.reconstruct.camera import make_camera
    from face3d.render import Renderer

    x = model().vertices[0]
    col = 0.5 + 0.3 * torch.sin(x[:, [0, 1, 2]] / torch.tensor([25.0, 30.0, 35.0]))  # smooth: pixels can carry it
    data = _clip(model, T=3, S=96)
    cam = make_camera(torch.full((3,), float(data.K[0, 0])), 96, 96)
    with torch.no_grad():
        v = model(expression=torch.tensor(data.expression), rotation=torch.tensor(data.rotation),
                  translation=torch.tensor(data.translation)).vertices
        out = Renderer()(v, model.faces, cam, vertex_colors=col, antialias=False)
    data.frames = (out.rgb * 255).round().byte().numpy()
    baked = texture_from_frames(model, data, frames=range(3))
    face = model.region_mask("face")
    err = (baked - col).abs().max(1).values[face]
    assert float(err.median()) < 0.02
    assert float((col - col[face].mean(0)).abs().max(1).values[face].median()) > 0.1  # far from a flat colour


def test_bad_inputs_get_clear_errors(model, tmp_path):
    from PIL import Image

    noise = tmp_path / "noface"
    noise.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(noise / f"{i:03d}.png")
    with pytest.raises(ValueError, match="no face"):
        prepare(noise, tmp_path / "out", model_spec="character")
    tr = tmp_path / "track"
    tr.mkdir()
    base = dict(identity=np.zeros(model.n_identity), expression=np.zeros((4, model.n_expression)),
                jaw=np.zeros((4, 3)), rotation=np.zeros((4, 3)), translation=np.zeros((4, 3)), focal=500.0,
                width=64, height=64)
    np.savez(tr / "track.npz", **base)
    with pytest.raises(ValueError, match="has 4 frames but the video has 3"):
        load_track(tr, model, 3, 64, 64)
    np.savez(tr / "track.npz", **{**base, "identity": np.zeros(model.n_identity + 1)})
    with pytest.raises(ValueError, match="identity"):
        load_track(tr, model, 4, 64, 64)
    with pytest.raises(FileNotFoundError, match="portrait.pt"):
        load_portrait(tmp_path / "nothing")


def _bar_frame(tx: float, H: int = 32, W: int = 32) -> torch.Tensor:
    """A bright vertical bar whose column follows the head's x translation (0.5 px per mm)."""
    x = torch.arange(W).float()
    bar = torch.exp(-0.5 * ((x - (16 + 0.5 * tx)) / 2.0) ** 2)
    return torch.stack((0.2 + 0.7 * bar, 0.3 + 0 * bar, 0.6 - 0.4 * bar), -1)[None].expand(H, W, 3)


def test_untrained_backdrop_is_the_fixed_background():
    from avatars.portrait.backdrop import Backdrop

    bg = torch.rand(12, 20, 3, generator=torch.Generator().manual_seed(0))
    b = Backdrop(bg)
    for tr in (torch.zeros(3), torch.tensor([30.0, -10.0, 5.0])):
        assert torch.allclose(b.image(12, 20, torch.tensor([0.2, 0.0, 0.1]), tr), bg, atol=1e-6)


def test_backdrop_follows_the_pose_on_held_out_poses():
    """Trained on 9 head positions, the layer predicts the bar at two positions between them
    far better than the median background does (what it replaced)."""
    from avatars.portrait.backdrop import Backdrop, pixel_uv

    torch.manual_seed(0)
    txs = torch.linspace(-10, 10, 9)
    frames = torch.stack([_bar_frame(float(t)) for t in txs])
    med = frames.median(0).values
    b = Backdrop(med, grid=8, channels=8, hidden=32)
    pose = lambda t: torch.tensor([float(t), 0.0, 0.0])  # noqa: E731
    b.set_rest_pose(torch.zeros(9, 3), torch.stack([pose(t) for t in txs]))
    opt = torch.optim.Adam(b.parameters(), lr=3e-3)
    uv = pixel_uv(torch.arange(32 * 32), 32, 32)
    for s in range(300):
        j = s % 9
        loss = ((b(uv, torch.zeros(3), pose(txs[j])) - frames[j].reshape(-1, 3)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for t in (-6.7, 3.3):
        gt = _bar_frame(t)
        with torch.no_grad():
            err = float(((b.image(32, 32, torch.zeros(3), pose(t)) - gt) ** 2).mean())
        assert err < 0.2 * float(((med - gt) ** 2).mean()), t
    with torch.no_grad():  # beyond the trained range the layer holds the nearest trained pose
        assert torch.equal(b.image(32, 32, torch.zeros(3), pose(40.0)), b.image(32, 32, torch.zeros(3), pose(10.0)))


def test_backdrop_image_matches_per_pixel_evaluation():
    """At the texture's size the whole-image path is the per-pixel layer; above it, the smooth
    part is upsampled, so it stays close to the per-pixel layer."""
    from avatars.portrait.backdrop import Backdrop, pixel_uv

    g = torch.Generator().manual_seed(1)
    b = Backdrop(torch.rand(16, 16, 3, generator=g))
    with torch.no_grad():
        b.mlp[-1].weight.normal_(0, 0.5, generator=g)
    rot, tr = torch.tensor([0.1, -0.2, 0.0]), torch.tensor([5.0, 2.0, -3.0])
    with torch.no_grad():
        direct = b(pixel_uv(torch.arange(256), 16, 16), rot, tr).reshape(16, 16, 3)
        assert torch.allclose(b.image(16, 16, rot, tr), direct, atol=1e-6)
        big = b.image(32, 32, rot, tr)
        exact = b(pixel_uv(torch.arange(32 * 32), 32, 32), rot, tr).reshape(32, 32, 3)
        no_layer = torch.nn.functional.interpolate(b.texture, size=(32, 32), mode="bilinear", align_corners=False)
    err = float((big - exact).abs().mean())
    assert err < 0.2 * float((no_layer[0].permute(1, 2, 0) - exact).abs().mean()), err


def test_motion_gate_marks_only_what_moved():
    """A noisy static wall with a bar sweeping columns 20-27: the gate is 0 on the wall far from
    the bar, 1 on the bar's path, and 1 where the head always covered the wall."""
    from avatars.portrait.backdrop import motion_gate

    rng = np.random.default_rng(0)
    N, H, W = 12, 48, 48
    wall = rng.uniform(0.2, 0.8, (H, W, 3)).astype(np.float32)
    frames = np.repeat(wall[None], N, 0) + rng.normal(0, 0.01, (N, H, W, 3)).astype(np.float32)
    for t in range(N):
        frames[t, :, 20 + (t * 8) // N] = 1.0
    masks = np.zeros((N, H, W), np.float32)
    masks[:, 2:10, 2:10] = 1.0  # a "head" that never moves off this square
    med = np.median(frames, 0)
    g = motion_gate(frames, masks, med)
    assert g.shape == (H, W) and g.dtype == np.float32
    assert float(g[:, 40:].max()) < 0.01 and float(g[20:, :12].max()) < 0.01  # far wall: still
    assert float(g[:, 21:27].min()) > 0.99  # the bar's path: moving
    assert float(g[4:8, 4:8].min()) > 0.99  # never seen as background: left to the layer
    with pytest.raises(ValueError, match="motion_gate"):
        motion_gate(frames, masks[:, :10], med)


def test_gated_backdrop_keeps_the_still_image_where_nothing_moved():
    from avatars.portrait.backdrop import Backdrop

    g = torch.Generator().manual_seed(2)
    bg = torch.rand(16, 16, 3, generator=g)
    b = Backdrop(bg)
    gate = torch.ones(16, 16)
    gate[:, :6] = 0.0
    b.set_gate(gate)
    with torch.no_grad():  # a trained-looking layer: flow, residual and a drifted texture
        b.mlp[-1].weight.normal_(0, 0.5, generator=g)
        b.texture.add_(0.2 * torch.randn(b.texture.shape, generator=g))
        for rot, tr in ((torch.tensor([0.3, -0.2, 0.1]), torch.tensor([20.0, 5.0, -9.0])),
                        (torch.zeros(3), torch.zeros(3))):
            img = b.image(16, 16, rot, tr)
            assert torch.allclose(img[:, :6], bg[:, :6], atol=1e-6)  # gate 0: the still image, exactly
            assert float((img[:, 8:] - bg[:, 8:]).abs().mean()) > 0.05  # the layer where the gate is 1
    with pytest.raises(ValueError, match="texture's size"):
        b.set_gate(torch.ones(8, 8))
    # a state saved before the gate loads as the ungated layer it was
    old = {k: v for k, v in Backdrop(bg).state_dict().items() if k != "gate"}
    c = Backdrop(bg)
    c.load_state_dict(old)
    assert torch.equal(c.gate, torch.ones(1, 1, 16, 16)) and torch.equal(c.still, c.texture.detach())


def test_front_to_back_rendering_matches_all_samples_within_its_threshold(model):
    """render_rays_front_to_back (the fast path's second pass) gives render_rays' colours when it
    skips nothing, and otherwise differs by at most the transmittance it stops at."""
    torch.manual_seed(0)
    data = _clip(model, T=2)
    p = _portrait(model, data)
    with torch.no_grad():  # a field with some structure: untrained weights perturbed
        for q in p.field.parameters():
            q.add_(0.3 * torch.randn_like(q))
    cam = data.camera()
    prm = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in data.params(0).items()}
    v = p.posed(prm["expression"][None], prm["jaw"][None], prm["rotation"][None], prm["translation"][None])
    mask, near, far = (x[0].reshape(-1) for x in p.shell_intervals(v, cam))
    pix = mask.nonzero()[:, 0]
    o, d = pixel_rays(cam.K[0].float(), cam.R[0].float(), cam.t[0].float(), data.size, data.size, pix)
    rays = RayBatch(pix, o, d, near[pix], far[pix])
    pose = p.pose_vector(prm["rotation"], prm["jaw"])
    app = p.field.app.weight.mean(0)
    bg = torch.rand(len(pix), 3)
    with torch.no_grad():
        ref = p.render_rays(rays, v[0], prm["expression"], pose, app, bg=bg)
    assert 0.2 < float(ref["alpha"].mean()) and float(ref["alpha"].max()) > 0.999  # some rays are opaque
    for t in (0.0, 1e-4, 0.05):
        out = p.render_rays_front_to_back(rays, v[0], prm["expression"], pose, app, bg=bg, min_transmittance=t)
        diff = (out["rgb"] - ref["rgb"]).abs().max()
        assert float(diff) <= t + 2e-6, (t, float(diff))
        assert float((out["alpha"] - ref["alpha"]).abs().max()) <= t + 2e-6
    assert float(diff) > 1e-4  # at 0.05 it did stop rays early
