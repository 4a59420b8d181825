"""Visemes -> expression coefficients and jaw rotation, for any :class:`MorphableModel`.

The viseme rig (:data:`VISEME_RIG`) is written once over ARKit channel names plus a jaw opening
angle. For a model with ARKit-style names the channels are looked up by name: a per-side name
(``mouthSmile_L``) falls back to a combined one (``mouthSmile``, half weight per side) and vice
versa; channels the model lacks are dropped and listed in :attr:`ModelRig.missing`.

For a model without ARKit names (e.g. FLAME's PCA expressions) the rig is *fitted*: each viseme
is posed on a reference ARKit model (the built-in head by default), the displacement of the 20
iBUG mouth landmarks (48-67) is measured, scaled by the ratio of the two models' mouth widths,
and the target model's expression coefficients are the ridge least-squares solution
``argmin_c |B c - d|^2 + lam |c / std|^2`` with ``B`` the target's mouth-landmark expression basis.
The jaw angle carries over unchanged (every model here has the same jaw joint).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from audio2exp.phonemes import VISEMES
from face3d.models import MorphableModel

MOUTH_LANDMARKS = tuple(range(48, 68))  # iBUG 300-W outer + inner lip
INNER_UPPER, INNER_LOWER = 62, 66  # iBUG inner-lip midpoints: their distance is the lip opening

# viseme -> (ARKit channel weights, jaw opening in radians about +x).
VISEME_RIG: dict[str, tuple[dict[str, float], float]] = {
    "sil": ({}, 0.0),
    "PP": ({"mouthPress_L": 0.4, "mouthPress_R": 0.4}, 0.0),
    "FF": ({"mouthRollLower": 0.4, "mouthUpperUp_L": 0.2, "mouthUpperUp_R": 0.2}, 0.03),
    "TH": ({"mouthLowerDown_L": 0.25, "mouthLowerDown_R": 0.25, "mouthStretch_L": 0.1, "mouthStretch_R": 0.1}, 0.07),
    "DD": ({"mouthLowerDown_L": 0.2, "mouthLowerDown_R": 0.2, "mouthStretch_L": 0.15, "mouthStretch_R": 0.15}, 0.055),
    "kk": ({"mouthLowerDown_L": 0.15, "mouthLowerDown_R": 0.15}, 0.06),
    "CH": ({"mouthFunnel": 0.5, "mouthPucker": 0.2, "mouthUpperUp_L": 0.2, "mouthUpperUp_R": 0.2}, 0.05),
    "SS": ({"mouthStretch_L": 0.3, "mouthStretch_R": 0.3, "mouthSmile_L": 0.15, "mouthSmile_R": 0.15}, 0.04),
    "nn": ({"mouthLowerDown_L": 0.15, "mouthLowerDown_R": 0.15, "mouthStretch_L": 0.1, "mouthStretch_R": 0.1}, 0.05),
    "RR": ({"mouthPucker": 0.4, "mouthFunnel": 0.3}, 0.045),
    "aa": ({"mouthLowerDown_L": 0.35, "mouthLowerDown_R": 0.35, "mouthUpperUp_L": 0.15, "mouthUpperUp_R": 0.15}, 0.2),
    "E": ({"mouthStretch_L": 0.3, "mouthStretch_R": 0.3, "mouthSmile_L": 0.1, "mouthSmile_R": 0.1,
           "mouthLowerDown_L": 0.2, "mouthLowerDown_R": 0.2}, 0.12),
    "ih": ({"mouthSmile_L": 0.35, "mouthSmile_R": 0.35, "mouthStretch_L": 0.25, "mouthStretch_R": 0.25,
            "mouthLowerDown_L": 0.1, "mouthLowerDown_R": 0.1}, 0.065),
    "oh": ({"mouthFunnel": 0.55, "mouthPucker": 0.25, "mouthLowerDown_L": 0.15, "mouthLowerDown_R": 0.15}, 0.15),
    "ou": ({"mouthPucker": 0.75, "mouthFunnel": 0.35}, 0.05),
}
JAW_AXIS = 0  # opening the mouth is a positive rotation about +x (MorphableModel.forward)


def _side_split(name: str) -> tuple[str, str | None]:
    for s in ("_L", "_R"):
        if name.endswith(s):
            return name[: -len(s)], s
    return name, None


def resolve_channels(names: list[str], weights: dict[str, float]) -> tuple[dict[int, float], list[str]]:
    """Map ARKit channel weights onto a model's expression indices by name.

    Returns ({index: weight}, [channels the model lacks]).
    """
    idx = {n: i for i, n in enumerate(names)}
    out: dict[int, float] = {}
    missing = []
    for ch, w in weights.items():
        base, side = _side_split(ch)
        if ch in idx:
            targets = [(idx[ch], w)]
        elif side is not None and base in idx:  # per-side rig channel, combined model channel
            targets = [(idx[base], w / 2)]
        elif side is None and f"{ch}_L" in idx and f"{ch}_R" in idx:  # combined rig, split model
            targets = [(idx[f"{ch}_L"], w), (idx[f"{ch}_R"], w)]
        else:
            missing.append(ch)
            continue
        for i, v in targets:
            out[i] = out.get(i, 0.0) + v
    return out, missing


@dataclass(frozen=True)
class ModelRig:
    """The viseme rig resolved for one model.

    ``expression`` (15, n_expression) coefficients per viseme (rows in :data:`VISEMES` order),
    ``jaw`` (15,) radians, ``method`` "by-name" or "fitted", ``missing`` rig channels dropped.
    """

    expression: np.ndarray
    jaw: np.ndarray
    method: str
    missing: tuple[str, ...] = field(default=())

    def apply(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Viseme weights (T, 15) -> expression (T, n_expression), jaw (T, 3) radians."""
        w = np.asarray(weights, np.float64)
        jaw = np.zeros((len(w), 3))
        jaw[:, JAW_AXIS] = w @ self.jaw
        return (w @ self.expression).astype(np.float32), jaw.astype(np.float32)


def arkit_rig(names: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(15, K) coefficients, (15,) jaw and the missing channels for a model with ARKit names."""
    E = np.zeros((len(VISEMES), len(names)))
    jaw = np.zeros(len(VISEMES))
    missing: set[str] = set()
    for r, v in enumerate(VISEMES):
        chans, j = VISEME_RIG[v]
        res, miss = resolve_channels(names, chans)
        for i, w in res.items():
            E[r, i] = w
        missing.update(miss)
        jaw[r] = j
    return E, jaw, sorted(missing)


def _mouth(model: MorphableModel, expression: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        v = model(expression=expression.to(model.template.dtype)).vertices
        return model.landmark_positions(v)[:, list(MOUTH_LANDMARKS)]  # (B, 20, 3)


def mouth_width(model: MorphableModel) -> float:
    """Mouth-corner distance (mm) of the neutral face (iBUG 48 and 54)."""
    m = _mouth(model, torch.zeros(1, model.n_expression))[0]
    return float((m[0] - m[6]).norm())


def fitted_rig(model: MorphableModel, reference: MorphableModel, lam: float = 1e-3) -> ModelRig:
    """Fit the viseme rig of ``model`` from the ARKit ``reference`` (see the module docstring)."""
    E_ref, jaw, _ = arkit_rig(reference.expression_names)
    ref_neutral = _mouth(reference, torch.zeros(1, reference.n_expression))
    d = (_mouth(reference, torch.as_tensor(E_ref, dtype=torch.float32)) - ref_neutral).double()  # (15, 20, 3)
    d = d * (mouth_width(model) / mouth_width(reference))
    # The target's mouth-landmark basis is exact by linearity (no joints move): unit coefficients.
    K = model.n_expression
    neutral = _mouth(model, torch.zeros(1, K))
    B = (_mouth(model, torch.eye(K)) - neutral).double().reshape(K, -1).T  # (60, K)
    std = model.expression_std.double().clamp_min(1e-6)
    A = torch.cat([B, (lam ** 0.5) * torch.diag(1 / std) * B.norm() / K ** 0.5])
    rhs = torch.cat([d.reshape(len(VISEMES), -1).T, torch.zeros(K, len(VISEMES), dtype=torch.float64)])
    coef = torch.linalg.lstsq(A, rhs).solution.T  # (15, K)
    return ModelRig(coef.float().numpy(), jaw, "fitted")


def model_rig(model: MorphableModel, reference: MorphableModel | None = None, min_channels: int = 4) -> ModelRig:
    """The viseme rig for ``model``: by ARKit name when at least ``min_channels`` of the rig's
    mouth channels resolve, otherwise fitted from ``reference`` (default: the built-in head)."""
    E, jaw, missing = arkit_rig(model.expression_names)
    if np.count_nonzero(np.abs(E).sum(0)) >= min_channels:
        return ModelRig(E.astype(np.float32), jaw, "by-name", tuple(missing))
    if reference is None:
        import face3d

        reference = face3d.load_model("builtin")
    return fitted_rig(model, reference)


def lip_opening(model: MorphableModel, expression: torch.Tensor, jaw: torch.Tensor, chunk: int = 256) -> np.ndarray:
    """(T,) mm: vertical gap between the inner-lip midpoints (iBUG 62 above 66) per frame.

    Signed (model +y is up): lips pressed through each other give <= 0, so "closed" is
    ``lip_opening(...) <= threshold`` whatever the rig does.

    Args:
        expression: (T, n_expression); jaw: (T, 3) radians. Evaluated in chunks of ``chunk`` frames.
    """
    out = []
    with torch.no_grad():
        for s in range(0, len(expression), chunk):
            v = model(expression=expression[s:s + chunk].float(), jaw=jaw[s:s + chunk].float()).vertices
            lm = model.landmark_positions(v)
            out.append(lm[:, INNER_UPPER, 1] - lm[:, INNER_LOWER, 1])
    return torch.cat(out).numpy() if out else np.zeros(0)
