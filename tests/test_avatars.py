"""avatars: identity sampling, turntables and the OBJ export command."""
import numpy as np
import pytest
import torch

from avatars.cli import main as avatars_main
from avatars.turntable import TurntableConfig, sample_identities, turntable
from face3d.geometry.mesh_io import load_mesh


def test_sample_identities_follow_the_prior(builtin_model):
    z = sample_identities(builtin_model, 4000, sigma=2.0, seed=3)
    assert z.shape == (4000, builtin_model.n_identity)
    std = z.std(0) / builtin_model.identity_std
    assert torch.allclose(std, torch.full_like(std, 2.0), atol=0.15)
    assert torch.equal(z, sample_identities(builtin_model, 4000, sigma=2.0, seed=3))
    with pytest.raises(ValueError, match="at least 1"):
        sample_identities(builtin_model, 0)


def test_turntable_shows_the_head_from_all_sides(builtin_model):
    frames = turntable(builtin_model, cfg=TurntableConfig(frames=4, size=48))
    assert frames.shape == (4, 48, 48, 3) and frames.dtype == np.uint8
    fg = (frames.astype(int).sum(-1) < 740)  # not the white background
    assert (fg.mean((1, 2)) > 0.1).all()
    # the 90° and 270° views are mirror images of the (left-right symmetric) head
    side_l, side_r = fg[1], fg[3][:, ::-1]
    assert (side_l == side_r).mean() > 0.95
    # and the front differs from the side
    assert (fg[0] != fg[1]).mean() > 0.05


def test_sample_command_writes_meshes_of_the_model(tmp_path, builtin_model):
    assert avatars_main(["sample", "--n", "2", "--sigma", "1", "--out", str(tmp_path)]) == 0
    files = sorted(tmp_path.glob("identity_*.obj"))
    assert [f.name for f in files] == ["identity_000.obj", "identity_001.obj"]
    a, b = (load_mesh(f) for f in files)
    assert a.vertices.shape == (builtin_model.n_vertices, 3)
    assert np.array_equal(a.faces, builtin_model.faces.numpy())
    expected = builtin_model(identity=sample_identities(builtin_model, 2, 1.0, 0)).vertices.detach().numpy()
    assert np.abs(a.vertices - expected[0]).max() < 1e-4
    assert np.abs(a.vertices - b.vertices).max() > 1.0  # two different people
