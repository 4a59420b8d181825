"""The audio-to-expression transformer.

Non-autoregressive: log-mel frames (100 Hz) are stacked in pairs (50 Hz), projected, and passed
through pre-norm transformer layers whose self-attention is *banded*: frame ``i`` sees frames
``i - past .. i + future`` only, with a learned bias per head and relative offset (no absolute
positions, so no maximum length). The band bounds the look-ahead: ``layers * future`` network
frames plus the feature window (:attr:`Audio2Exp.lookahead_ms`), and makes chunked inference with
enough left context exactly equal to a full pass (:meth:`Audio2Exp.infer`).

Outputs per 50 Hz frame ``k`` (time ``0.02 k + 0.005`` s): expression coefficients of the model it
was trained for (n_expression), the jaw opening angle (radians) and viseme logits (15, auxiliary).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from audio2exp.phonemes import VISEMES

FRAME_RATE = 50.0  # network frames per second
FRAME_OFFSET = 0.005  # seconds: network frame k shows time 0.02 k + 0.005 (between mel frames 2k, 2k+1)


@dataclass(frozen=True)
class NetworkConfig:
    n_expression: int
    n_mels: int = 80
    d_model: int = 96
    n_layers: int = 3
    n_heads: int = 4
    ff: int = 192
    past: int = 32  # network frames each layer attends back (640 ms)
    future: int = 2  # network frames each layer attends ahead (40 ms)
    dropout: float = 0.1


class BandedAttention(nn.Module):
    """Multi-head self-attention over a band of relative offsets [-past, future] with a learned
    per-head bias per offset. x: (B, T, d) -> (B, T, d)."""

    def __init__(self, d: int, heads: int, past: int, future: int, dropout: float):
        super().__init__()
        self.h, self.past, self.future = heads, past, future
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.bias = nn.Parameter(torch.zeros(heads, past + future + 1))
        self.drop = dropout

    def band(self, T: int, device) -> tuple[Tensor, Tensor]:
        """(T, T) bias-table index of each (query i, key j) pair and the (T, T) bool band mask."""
        rel = torch.arange(T, device=device)[None, :] - torch.arange(T, device=device)[:, None]  # j - i
        inband = (rel >= -self.past) & (rel <= self.future)
        return (rel + self.past).clamp(0, self.past + self.future), inband

    def forward(self, x: Tensor, band: tuple[Tensor, Tensor] | None = None) -> Tensor:
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        idx, inband = band if band is not None else self.band(T, x.device)
        mask = self.bias[:, idx].masked_fill(~inband, float("-inf"))[None]  # (1, h, T, T)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype),
                                                       dropout_p=self.drop if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class _Layer(nn.Module):
    def __init__(self, c: NetworkConfig):
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.att = BandedAttention(c.d_model, c.n_heads, c.past, c.future, c.dropout)
        self.ff = nn.Sequential(nn.Linear(c.d_model, c.ff), nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.ff, c.d_model))
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: Tensor, band=None) -> Tensor:
        x = x + self.drop(self.att(self.n1(x), band))
        return x + self.drop(self.ff(self.n2(x)))


class Audio2Exp(nn.Module):
    """Log-mel (B, T_mel, n_mels) dB -> dict of (B, T, n_expression) expression, (B, T) jaw
    radians, (B, T, 15) viseme logits with ``T = ceil(T_mel / 2)``."""

    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))
        self.inp = nn.Sequential(nn.Linear(2 * cfg.n_mels, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, cfg.d_model))
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.n_expression + 1 + len(VISEMES))
        nn.init.zeros_(self.head.weight)  # start at the neutral face: the lip loss starts small
        nn.init.zeros_(self.head.bias)

    @property
    def context(self) -> tuple[int, int]:
        """(past, future) network frames that affect one output frame through all layers."""
        return self.cfg.n_layers * self.cfg.past, self.cfg.n_layers * self.cfg.future

    @property
    def lookahead_ms(self) -> float:
        """Audio after a frame's time that its output depends on (ms): the band plus one mel
        frame of the pair plus half an FFT window (256 samples at 16 kHz)."""
        return self.context[1] * 1000 / FRAME_RATE + (10 - 1000 * FRAME_OFFSET) + 16.0

    def forward(self, mel: Tensor) -> dict[str, Tensor]:
        B, T, M = mel.shape
        if M != self.cfg.n_mels:
            raise ValueError(f"mel: expected (B, T, {self.cfg.n_mels}), got {tuple(mel.shape)}")
        x = (mel - self.mel_mean) / self.mel_std
        if T % 2:
            x = torch.cat([x, x[:, -1:]], 1)
        x = self.inp(x.reshape(B, -1, 2 * M))
        band = self.layers[0].att.band(x.shape[1], x.device)  # every layer has the same band
        for layer in self.layers:
            x = layer(x, band)
        y = self.head(self.norm(x))
        K = self.cfg.n_expression
        return {"expression": y[..., :K], "jaw": y[..., K], "viseme": y[..., K + 1:]}

    @torch.no_grad()
    def infer(self, mel: Tensor, chunk: int = 1000) -> dict[str, Tensor]:
        """Chunked evaluation of one sequence (T_mel, n_mels): memory bounded by ``chunk`` frames,
        results equal to :meth:`forward` on the whole (each chunk carries its full context)."""
        past, future = self.context
        T = -(-mel.shape[0] // 2)
        outs = []
        for s in range(0, T, chunk):
            a, b = max(0, s - past), min(T, s + chunk + future)
            y = self(mel[None, 2 * a: 2 * b])
            outs.append({k: v[0, s - a: s - a + min(chunk, T - s)] for k, v in y.items()})
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}

    def export(self) -> dict:
        return {"config": asdict(self.cfg), "state": {k: v.half() if v.is_floating_point() else v
                                                      for k, v in self.state_dict().items()}}

    @classmethod
    def from_export(cls, blob: dict) -> "Audio2Exp":
        net = cls(NetworkConfig(**blob["config"]))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()})
        return net.eval()


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())

