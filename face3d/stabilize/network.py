"""The learned stabilizer (after Bednarik et al., "Learning to Stabilize Faces", Eurographics 2024).

Pipeline for a pair (A, B) of meshes in one model's topology:

1. Keep the visible face only (:func:`~face3d.stabilize.synth.visible_vertices`: no neck, eyes,
   mouth interior or back of the head).
2. Pre-align each mesh to the model's template by Procrustes on 512 of those vertices (``P_a``,
   ``P_b``; a farthest-point subsample). This makes the network input exactly invariant to any
   global rigid motion of either mesh.
3. A shared encoder reads one pre-aligned mesh and predicts ``Q``: where that mesh's skull sits in
   the pre-aligned frame, as a residual rotation (6D, Zhou et al. 2019) and translation about the
   template's head centre.
4. ``T = inv(P_b) @ Q_b @ inv(Q_a) @ P_a`` maps A's skull onto B's.

Design choices (why):

- *Flattened fixed vertex set, not PointNet.* Vertices correspond across meshes, so position in
  the input vector *is* the vertex identity; an MLP on the flattened coordinates of a fixed
  farthest-point subsample of the visible face learns which vertices slide with which expression.
  A PointNet-style per-vertex MLP + pooling would have to relearn that identity from coordinates.
- *Per-mesh skull pose composed into a pair transform, not a regressor on the concatenated pair.*
  The true transform has exactly this form (``Q = P S`` with ``S`` the skull transform), an
  identity-dependent bias of ``Q`` cancels in ``Q_b inv(Q_a)``, ``T(A, A)`` is exactly the identity
  and transforms compose consistently across a performance (no pair-to-pair jitter), and a
  sequence of N frames is encoded N times rather than once per pair.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from face3d.geometry.rotations import rotation_6d_to_matrix
from face3d.models.base import MorphableModel
from face3d.stabilize.align import apply_transform, invert_transform, make_transform, rigid_fit
from face3d.stabilize.synth import skull_points, visible_vertices

FORMAT = "face3d-stabilizer-v1"
_ROT_SCALE = 0.1  # a unit network output is ~6 degrees ...
_TRANS_SCALE = 10.0  # ... or 10 mm


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of :class:`StabilizerNet`.

    ``n_points``: visible vertices fed to the encoder; ``align_points``: visible vertices used for
    the Procrustes pre-alignment (both are prefixes of one farthest-point ordering of the visible
    template, so the encoder's vertices are among the alignment ones); ``hidden``: width of the
    two hidden layers.
    """

    n_points: int = 384
    align_points: int = 512
    hidden: int = 512


def farthest_points(points: Tensor, k: int) -> Tensor:
    """(N, 3) points -> (min(k, N),) int64 indices of a farthest-point subsample (starts at the
    point nearest the centroid, so the result is deterministic)."""
    N = points.shape[0]
    k = min(k, N)
    d = torch.full((N,), float("inf"), dtype=points.dtype)
    out = torch.empty(k, dtype=torch.int64)
    cur = int((points - points.mean(0)).norm(dim=1).argmin())
    for i in range(k):  # k iterations over vectorised distance updates (k ~ 400)
        out[i] = cur
        d = torch.minimum(d, (points - points[cur]).norm(dim=1))
        cur = int(d.argmax())
    return out


class StabilizerNet(nn.Module):
    """Learned stabilizer for one model topology (see the module docstring).

    Buffers (saved with the weights): ``visible`` (Nv,) the visible face's vertex indices (checked
    against the model on loading), ``align`` (Na,) vertex indices of the pre-alignment,
    ``inputs`` (Np,) vertex indices fed to the encoder, ``skull`` (Ns,) vertex indices of the loss
    (``scalp_back``), ``template_align`` (Na, 3) mm pre-alignment target (centred), ``centre``
    (3,) mm, ``in_mean`` / ``in_std`` (3 Np,) input normalisation.
    """

    def __init__(self, model: MorphableModel, cfg: NetworkConfig = NetworkConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.model_name = model.name
        self.n_vertices = model.n_vertices
        vis = visible_vertices(model)
        tmpl = model.template.detach().cpu().float()
        centre = tmpl[torch.cat([vis, skull_points(model)])].mean(0)
        order = farthest_points(tmpl[vis], max(cfg.align_points, cfg.n_points))
        align = vis[order[: cfg.align_points]]
        n_in = min(cfg.n_points, len(order))
        self.register_buffer("visible", vis)
        self.register_buffer("align", align)
        self.register_buffer("inputs", vis[order[:n_in]])
        self.register_buffer("skull", skull_points(model).clone())
        self.register_buffer("centre", centre)
        self.register_buffer("template_align", tmpl[align] - centre)
        self.register_buffer("template_inputs", tmpl[vis[order[:n_in]]] - centre)
        D = 3 * n_in
        self.register_buffer("in_mean", torch.zeros(D))
        self.register_buffer("in_std", torch.ones(D))
        self.encoder = nn.Sequential(
            nn.Linear(D, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
            nn.Linear(cfg.hidden, 9),
        )
        nn.init.zeros_(self.encoder[-1].weight)
        nn.init.zeros_(self.encoder[-1].bias)

    # ------------------------------------------------------------------ pieces
    def check(self, vertices: Tensor) -> None:
        if vertices.dim() != 3 or vertices.shape[1:] != (self.n_vertices, 3):
            raise ValueError(
                f"expected meshes of shape (B, {self.n_vertices}, 3) (the {self.model_name} topology "
                f"these weights were trained for), got {tuple(vertices.shape)}"
            )

    def prealign(self, align_pts: Tensor, input_pts: Tensor) -> tuple[Tensor, Tensor]:
        """(B, Na, 3) ``align`` and (B, Np, 3) ``inputs`` vertices, mm -> the Procrustes
        pre-alignment ``P`` (B, 4, 4) onto the centred template and the (B, 3 Np) encoder input
        before normalisation (pre-aligned inputs minus the template's; ``in_mean`` / ``in_std``
        are fitted on it)."""
        P = rigid_fit(align_pts, self.template_align.to(align_pts).expand(len(align_pts), -1, -1))
        return P, (apply_transform(P, input_pts) - self.template_inputs.to(input_pts)).flatten(1)

    def encode_points(self, align_pts: Tensor, input_pts: Tensor) -> tuple[Tensor, Tensor]:
        """Encode meshes given only the vertices the network reads (shapes as in :meth:`prealign`).

        Returns ``P`` (B, 4, 4), the pre-alignment, and ``Q`` (B, 4, 4), the predicted skull pose
        in the pre-aligned frame (dtype of the input).
        """
        P, x = self.prealign(align_pts, input_pts)
        feats = (x - self.in_mean.to(x)) / self.in_std.to(x)
        out = self.encoder(feats.float()).to(feats.dtype)
        d6 = out[:, :6] * _ROT_SCALE
        d6 = d6 + torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=d6.dtype, device=d6.device)
        return P, make_transform(rotation_6d_to_matrix(d6), out[:, 6:] * _TRANS_SCALE)

    def encode(self, vertices: Tensor) -> tuple[Tensor, Tensor]:
        """(B, V, 3) meshes -> (pre-alignment ``P`` (B, 4, 4), skull pose ``Q`` (B, 4, 4))."""
        self.check(vertices)
        # index_select: several times faster than advanced indexing on (B, V, 3) CPU tensors
        return self.encode_points(vertices.index_select(1, self.align), vertices.index_select(1, self.inputs))

    # ------------------------------------------------------------------ API
    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        """(B, V, 3) source and target meshes (mm) -> (B, 4, 4) transforms mapping the source's
        skull onto the target's (same dtype as ``source``)."""
        P_a, Q_a = self.encode(source)
        P_b, Q_b = self.encode(target)
        return invert_transform(P_b) @ Q_b @ invert_transform(Q_a) @ P_a

    @staticmethod
    def relative(P_a: Tensor, Q_a: Tensor, P_b: Tensor, Q_b: Tensor) -> Tensor:
        """Compose encodings (each (B, 4, 4)) into source-to-target skull transforms (B, 4, 4)."""
        return invert_transform(P_b) @ Q_b @ invert_transform(Q_a) @ P_a

    # ------------------------------------------------------------------ persistence
    def checkpoint(self, extra: dict | None = None) -> dict:
        """A dict for :func:`torch.save` (loadable with ``weights_only=True``)."""
        return {
            "format": FORMAT,
            "model_name": self.model_name,
            "n_vertices": self.n_vertices,
            "network": asdict(self.cfg),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            **(extra or {}),
        }

    @classmethod
    def from_checkpoint(cls, ckpt: dict, model: MorphableModel, source: str = "weights") -> "StabilizerNet":
        """Rebuild from :meth:`checkpoint`, checking that ``model`` is the one it was trained for."""
        if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
            found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
            raise ValueError(f"{source}: expected a stabilizer weights file (format {FORMAT!r}), found {found!r}")
        if ckpt["n_vertices"] != model.n_vertices:
            raise ValueError(
                f"{source} was trained for model {ckpt['model_name']!r} with {ckpt['n_vertices']} vertices; "
                f"the model given ({model.name!r}) has {model.n_vertices}. Train weights for it with "
                f"`face3d stabilize-train --model SPEC --out PATH`."
            )
        net = cls(model, NetworkConfig(**ckpt["network"]))
        sd = ckpt["state_dict"]
        for key in ("visible", "skull"):
            mine, theirs = getattr(net, key), sd[key]
            if mine.shape != theirs.shape or not torch.equal(mine, theirs):
                raise ValueError(
                    f"{source} was trained for model {ckpt['model_name']!r} whose {key!r} vertex set has "
                    f"{len(theirs)} vertices; model {model.name!r} gives {len(mine)} (or different indices). "
                    "The regions differ: retrain with `face3d stabilize-train`."
                )
        if ckpt["model_name"] != model.name:
            raise ValueError(f"{source} was trained for model {ckpt['model_name']!r}, got model {model.name!r}")
        net.load_state_dict(sd)
        net.model_sha256 = ckpt.get("model_sha256", "")
        net.eval()
        return net
