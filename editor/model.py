"""The editor: connector + DiT behind one module, with its shape recorded so a checkpoint can be
rebuilt from its own metadata."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from editor.connector import Connector
from editor.dit import DiTShape, build_dit, dit_velocity, load_dit, shape_of


@dataclass(frozen=True)
class ConnectorShape:
    in_dim: int  # the MLLM's hidden width
    width: int = 128
    depth: int = 2
    heads: int = 4


class Editor(nn.Module):
    def __init__(self, connector: ConnectorShape, dit_shape: DiTShape | None = None, dit_init: str | None = None):
        super().__init__()
        if dit_init:
            self.dit = load_dit(dit_init)
            dit_shape = shape_of(self.dit)
        elif dit_shape is None:
            raise ValueError("give the DiT a shape or a checkpoint to start from")
        else:
            self.dit = build_dit(dit_shape)
        self.connector_shape, self.dit_shape = connector, dit_shape
        self.connector = Connector(connector.in_dim, connector.width, connector.depth, connector.heads, dit_shape.cond_dim, dit_shape.pooled_dim)

    def velocity(self, noisy_target: torch.Tensor, source: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor,
                 t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        cond, pooled = self.connector(hidden, mask)
        return dit_velocity(self.dit, noisy_target, source, cond, pooled, t, grid)

    def shapes(self) -> dict:
        return {"connector": asdict(self.connector_shape), "dit": asdict(self.dit_shape)}

    @classmethod
    def from_shapes(cls, shapes: dict) -> "Editor":
        return cls(ConnectorShape(**shapes["connector"]), DiTShape(**shapes["dit"]))
