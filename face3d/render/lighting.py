"""Lambertian directional light and 2nd-order spherical-harmonic (SH) shading.

SH basis (real, orthonormal on the sphere; the constants used by most 3DMM fitting code), for a
unit normal ``n = (x, y, z)`` in world coordinates:

====  =====================  ==========================
 k    function               constant
====  =====================  ==========================
 0    c0                     c0 = 1 / (2 sqrt(pi)) = 0.282095
 1    c1 * y                 c1 = sqrt(3 / (4 pi)) = 0.488603
 2    c1 * z
 3    c1 * x
 4    c2 * x y               c2 = sqrt(15 / (4 pi)) = 1.092548   
 5    c2 * y z
 6    c3 * (3 z^2 - 1)       c3 = sqrt(5 / (16 pi)) = 0.315392
 7    c2 * x z
 8    c4 * (x^2 - y^2)       c4 = sqrt(15 / (16 pi)) = 0.546274
====  =====================  ==========================

Shading is ``sum_k coeffs[b, k, c] * Y_k(n)`` per colour channel ``c`` (the coefficients are
those of the irradiance, i.e. the Lambertian band factors are folded into them), multiplied by
the albedo. With only ``k = 0`` non-zero the shading is the constant ``0.282095 * coeffs[:, 0]``.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

SH_C0 = 1.0 / (2.0 * math.sqrt(math.pi))
SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
SH_C2 = math.sqrt(15.0 / (4.0 * math.pi))
SH_C3 = math.sqrt(5.0 / (16.0 * math.pi))
SH_C4 = math.sqrt(15.0 / (16.0 * math.pi))


def sh_basis(normals: Tensor) -> Tensor:
    """(..., 3) unit normals -> (..., 9) SH basis values (order in the module docstring)."""
    x, y, z = normals.unbind(-1)
    one = torch.ones_like(x)
    return torch.stack((SH_C0 * one, SH_C1 * y, SH_C1 * z, SH_C1 * x, SH_C2 * x * y, SH_C2 * y * z,
                        SH_C3 * (3 * z * z - 1), SH_C2 * x * z, SH_C4 * (x * x - y * y)), -1)


def sh_shading(normals: Tensor, coeffs: Tensor) -> Tensor:
    """Irradiance from SH lighting.

    Args:
        normals: (B, H, W, 3) unit world normals.
        coeffs: (B, 9, C) or (9, C) SH coefficients per colour channel.
    Returns:
        (B, H, W, C) shading (multiply by albedo).
    """
    if coeffs.dim() == 2:
        coeffs = coeffs[None]
    if coeffs.shape[-2] != 9:
        raise ValueError(f"sh_coeffs: expected shape (B, 9, C) (2nd-order SH), got {tuple(coeffs.shape)}")
    Y = sh_basis(normals)  # (B, H, W, 9)
    return torch.einsum("bhwk,bkc->bhwc", Y, coeffs.expand(Y.shape[0], 9, coeffs.shape[-1]).to(Y))


def lambert(normals: Tensor, light_dir: Tensor, ambient: float = 0.3, diffuse: float = 0.7) -> Tensor:
    """Directional light: ``ambient + diffuse * max(0, n . l)``.

    Args:
        normals: (B, H, W, 3) unit world normals.
        light_dir: (B, 3) or (3,) direction *towards* the light, world (normalised here).
    Returns:
        (B, H, W, 1) shading.
    """
    l = torch.as_tensor(light_dir, dtype=normals.dtype, device=normals.device)
    if l.dim() == 1:
        l = l[None]
    if l.shape[-1] != 3:
        raise ValueError(f"light_dir: expected shape (B, 3) or (3,), got {tuple(l.shape)}")
    l = torch.nn.functional.normalize(l, dim=-1)
    ndl = (normals * l[:, None, None, :]).sum(-1, keepdim=True)
    return ambient + diffuse * ndl.clamp(min=0)
