"""The connector between the MLLM and the DiT: a few transformer blocks over the MLLM's hidden
states, then projections to the DiT's conditioning width and to its pooled vector."""

from __future__ import annotations

import torch
from torch import nn


class Connector(nn.Module):
    def __init__(self, in_dim: int, width: int, depth: int, heads: int, cond_dim: int, pooled_dim: int):
        super().__init__()
        # MLLM hidden states come at any scale (and random ones at CPU scale): normalise first
        self.norm_in = nn.LayerNorm(in_dim)
        self.proj_in = nn.Linear(in_dim, width)
        block = nn.TransformerEncoderLayer(width, heads, dim_feedforward=4 * width, dropout=0.0, batch_first=True, norm_first=True, activation="gelu")
        self.blocks = nn.TransformerEncoder(block, depth, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(width)
        self.to_cond = nn.Linear(width, cond_dim)
        self.to_pooled = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, pooled_dim))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, L, in_dim), mask (B, L) True on real tokens -> tokens (B, L, cond_dim) with
        padding zeroed, and pooled (B, pooled_dim), the mean over real tokens."""
        x = self.blocks(self.proj_in(self.norm_in(hidden)), src_key_padding_mask=~mask)
        x = self.norm_out(x) * mask[..., None]
        pooled = x.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return self.to_cond(x) * mask[..., None], self.to_pooled(pooled)


def pad_tokens(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pads a list of (L_i, D) tensors into (B, L, D) plus the True-on-real mask."""
    longest = max(r.shape[0] for r in rows)
    hidden = torch.zeros(len(rows), longest, rows[0].shape[1], dtype=rows[0].dtype)
    mask = torch.zeros(len(rows), longest, dtype=torch.bool)
    for i, r in enumerate(rows):
        hidden[i, : r.shape[0]] = r
        mask[i, : r.shape[0]] = True
    return hidden, mask
