"""The character head carried onto the default model's topology (avatars.sketch.character)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from avatars.sketch import character as chm
from avatars.sketch.heads import HeadConfig, sample_heads
from face3d.reconstruct.now import point_mesh_distance


@pytest.fixture(scope="module")
def transfer(builtin_model):
    return chm.register(builtin_model)


def _surface_distance(points, vertices, faces):
    return point_mesh_distance(points.double(), vertices.double(), faces)[0]


def test_point_mesh_distance_finds_points_on_a_plane():
    """The closest-point search the registration runs on (k = 16 candidate triangles)."""
    g = torch.Generator().manual_seed(0)
    xy = torch.stack(torch.meshgrid(torch.arange(10.0), torch.arange(10.0), indexing="ij"), -1).reshape(-1, 2)
    v = torch.cat((xy, torch.zeros(100, 1)), 1).double()
    i = torch.arange(81)
    i = i + i // 9  # lower-left corner of each cell
    f = torch.cat((torch.stack((i, i + 10, i + 1), 1), torch.stack((i + 1, i + 10, i + 11), 1)))
    p = torch.cat((torch.rand(50, 2, generator=g) * 8 + 0.5, torch.rand(50, 1, generator=g) * 4 - 2), 1).double()
    d, tri, bary = point_mesh_distance(p, v, f, k=16)
    q = (v[f[tri]] * bary[..., None]).sum(1)
    assert torch.allclose(d, p[:, 2].abs(), atol=1e-9)
    assert torch.allclose(q[:, :2], p[:, :2], atol=1e-9)


def test_expression_map_matches_names_and_merges_sides():
    M, shared = chm.expression_map(["a_L", "a_R", "b", "c"], ["b", "a", "z"])
    assert torch.equal(M, torch.tensor([[0, 0, 1.0, 0], [0.5, 0.5, 0, 0], [0, 0, 0, 0]]))
    assert shared.tolist() == [True, True, True, False]


def test_carried_heads_lie_on_their_own_character_surface(builtin_model, transfer):
    """A random character identity, carried over, lies near that character's surface (after the
    similarity), and much farther from another identity's."""
    from face3d.geometry.procrustes import apply_similarity

    ch = chm._character()
    g = torch.Generator().manual_seed(3)
    cid = torch.randn(2, ch.n_identity, generator=g) * 1.5
    ident, ex, off = chm.character_faces(builtin_model, transfer, cid, torch.zeros(2, builtin_model.n_expression))
    heads = builtin_model(identity=ident, expression=ex).vertices + off
    chars = apply_similarity(ch(identity=cid * ch.identity_std).vertices, transfer.R, transfer.t, transfer.s)
    skin = ch.region_mask("skin")
    cf = ch.faces[skin[ch.faces].all(1)]
    inner = transfer.fade[transfer.vertex] > 0.99  # inside the face, where the offsets are not faded
    v = transfer.vertex[inner]
    own = [_surface_distance(heads[k, v], chars[k], cf).mean() for k in range(2)]
    other = [_surface_distance(heads[k, v], chars[1 - k], cf).mean() for k in range(2)]
    lin = [_surface_distance(builtin_model(identity=ident).vertices[k, v], chars[k], cf).mean() for k in range(2)]
    for k in range(2):
        assert own[k] < 1.2, own
        assert own[k] < 0.7 * lin[k], (own, lin)  # the offsets carry what the linear fit misses
        assert other[k] > 2 * own[k], (own, other)
    assert float(off[:, ~(transfer.fade > 0)].abs().max()) < 1e-3  # off the face the linear head is kept


def test_character_heads_replace_some_heads_and_leave_the_others(builtin_model):
    cfg = replace(HeadConfig(), character_p=0.5)
    plain = sample_heads(builtin_model, 8, 11, replace(cfg, character_p=0.0))
    mixed = sample_heads(builtin_model, 8, 11, cfg)
    same = (plain.vertices == mixed.vertices).flatten(1).all(1)
    assert 0 < int(same.sum()) < 8
    assert torch.equal(mixed.character, ~same) and not bool(plain.character.any())
    assert torch.equal(plain.identity[same], mixed.identity[same])
    # the replaced heads' linear part is the model at their coefficients and pose
    k = torch.nonzero(~same)[:, 0]
    lin = builtin_model(identity=mixed.identity[k], expression=mixed.expression[k], neck=mixed.neck[k]).vertices
    assert torch.allclose(lin, mixed.linear[k], atol=1e-4)
    detail = (mixed.vertices[k] - mixed.linear[k]).norm(dim=-1)
    face = builtin_model.region_mask("face")
    assert float(detail[:, face].mean()) > 0.5  # mm of character shape beyond the linear head
    # the character's expressions are the model's own (those the character has), in their range
    assert float(mixed.expression[k].min()) >= 0 and float(mixed.expression[k].max()) <= cfg.expression_max


def test_models_without_landmarks_get_no_character_heads():
    from face3d.models.base import MorphableModel
    from face3d.models.toy import toy_model

    t = toy_model()
    bare = MorphableModel(name="bare", template=t.template, faces=t.faces, identity_basis=t.identity_basis,
                          expression_basis=t.expression_basis, expression_names=t.expression_names,
                          joint_regressor=t.joint_regressor, skin_weights=t.skin_weights, landmarks={},
                          regions={k: torch.nonzero(t.region_mask(k))[:, 0] for k in t.regions})
    assert chm.transfer_for(bare) is None
    with pytest.raises(ValueError, match="ibug68"):
        chm.register(bare)
    h = sample_heads(bare, 4, 0, replace(HeadConfig(), character_p=1.0))
    h0 = sample_heads(bare, 4, 0, replace(HeadConfig(), character_p=0.0))
    assert torch.equal(h.vertices, h0.vertices)
