"""Coarse stage: a drawing -> a morphable model's identity, expression and neck pose (a CNN).

The mesh is the model's own (its topology and UVs), so the fine stage and every later tool can
use it as any other head of that model.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class CoarseConfig:
    """Network size. ``width``: channels of the first layer (doubling per stride-2 level)."""

    width: int = 16
    hidden: int = 256


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CoarseNet(nn.Module):
    """(B, 3, 128, 128) ink maps (black, red, green) -> identity (B, n_id), expression (B, n_ex)
    and neck axis-angle (B, 3) rad. Identity comes out in units of the model's prior std."""

    def __init__(self, n_identity: int, n_expression: int, cfg: CoarseConfig = CoarseConfig()):
        super().__init__()
        w = cfg.width
        chans = [3, w, 2 * w, 4 * w, 6 * w, 8 * w]
        self.features = nn.Sequential(*[_block(a, b) for a, b in zip(chans[:-1], chans[1:])])  # 128 -> 4
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * 16, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Linear(cfg.hidden, n_identity + n_expression + 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)  # starts at the mean head
        self.n_identity, self.n_expression, self.cfg = n_identity, n_expression, cfg

    def forward(self, ink: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if ink.dim() != 4 or ink.shape[1] != 3 or ink.shape[2:] != (128, 128):
            raise ValueError(f"ink: expected shape (B, 3, 128, 128), got {tuple(ink.shape)}")
        y = self.head(self.features(ink))
        a, b = self.n_identity, self.n_identity + self.n_expression
        return y[:, :a], y[:, a:b], y[:, b:] * 0.1


def submodel(model, vertex_ids: Tensor):
    """The model restricted to ``vertex_ids`` (exact on them: joints are regressed from vertices
    that must all be included; see :func:`loss_vertices`). No faces."""
    from face3d.models.base import LandmarkSet, MorphableModel

    idx = vertex_ids
    pb = None
    if model.pose_basis is not None:
        pb = model.pose_basis.reshape(36, -1, 3)[:, idx].reshape(36, -1)
    return MorphableModel(
        name=f"{model.name}[sub]", template=model.template[idx], faces=torch.zeros(0, 3, dtype=torch.int64),
        identity_basis=model.identity_basis[idx], expression_basis=model.expression_basis[idx],
        expression_names=model.expression_names, joint_regressor=model.joint_regressor[:, idx],
        skin_weights=model.skin_weights[idx], landmarks={"ibug68": LandmarkSet.from_vertices([0])},
        regions={}, identity_std=model.identity_std, expression_std=model.expression_std, pose_basis=pb)


class FastHead(nn.Module):
    """The model's head on a vertex subset, for training losses: the linear shape, then the neck
    rotation as a rigid motion about the (regressed) neck joint. Pose correctives and skinning
    blends are left out (for the skull and face, 100 % on the neck joint, this is LBS exactly,
    less the small correctives). One matmul instead of the full forward: ~10x faster.

    ``forward(identity (B, n_id) in prior-std units, expression (B, n_ex), neck (B, 3))`` ->
    (B, N, 3) mm.
    """

    def __init__(self, model, vertex_ids: Tensor):
        super().__init__()
        from face3d.models.base import HEAD_JOINT

        basis = torch.cat((model.identity_basis * model.identity_std, model.expression_basis), -1)  # (V, 3, K)
        jr = model.joint_regressor[HEAD_JOINT]  # (V,)
        self.register_buffer("basis", basis[vertex_ids].reshape(-1, basis.shape[-1]).T.contiguous())  # (K, 3N)
        self.register_buffer("template", model.template[vertex_ids].reshape(-1))
        self.register_buffer("joint0", jr @ model.template)
        self.register_buffer("joint_basis", torch.einsum("v,vck->kc", jr, basis))  # (K, 3)

    def forward(self, identity: Tensor, expression: Tensor, neck: Tensor) -> Tensor:
        from face3d.geometry.rotations import axis_angle_to_matrix

        c = torch.cat((identity, expression), -1)
        x = (self.template + c @ self.basis).reshape(c.shape[0], -1, 3)
        j = (self.joint0 + c @ self.joint_basis)[:, None]
        R = axis_angle_to_matrix(neck)
        return (x - j) @ R.transpose(1, 2) + j


def loss_vertices(model, stride: int = 8) -> Tensor:
    """Vertex ids the coarse loss is measured on: every face vertex, every ``stride``-th other
    head vertex (not the neck) and every vertex the joint regressor uses. (N,) int64."""
    V = model.n_vertices
    keep = torch.zeros(V, dtype=torch.bool)
    keep[::stride] = True
    if "neck" in model.regions:
        keep[model.region("neck")] = False
    keep |= model.region_mask("face", missing_ok=True)
    keep |= model.joint_regressor.abs().sum(0) > 0
    return torch.nonzero(keep)[:, 0]


def coefficients_to_mesh(model, identity: Tensor, expression: Tensor, neck: Tensor) -> Tensor:
    """(B, n_id) in prior-std units, (B, n_ex), (B, 3) -> (B, V, 3) mm vertices."""
    return model(identity=identity * model.identity_std, expression=expression, neck=neck).vertices
