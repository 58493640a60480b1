"""The DiT: diffusers' FluxTransformer2DModel (double-stream blocks, then single-stream blocks,
3-axis RoPE), fed as FLUX.1 Kontext feeds it: the noisy target's tokens and the source image's
tokens in one sequence, told apart by the first RoPE axis (0 target, 1 source), so attention
lines up each target patch with the source patch at the same place."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

TARGET_AXIS, SOURCE_AXIS = 0.0, 1.0


@dataclass(frozen=True)
class DiTShape:
    in_channels: int
    double_blocks: int = 2
    single_blocks: int = 2
    heads: int = 4
    head_dim: int = 32
    cond_dim: int = 128  # width of the connector's tokens (Flux: the T5 width, 4096)
    pooled_dim: int = 128  # width of the pooled vector (Flux: the CLIP width, 768)

    def rope_axes(self) -> tuple[int, int, int]:
        """Flux splits each head's rotary dimensions over (index, row, column); keep that split
        in proportion (16, 56, 56 of 128), in even numbers."""
        index = max(2, (self.head_dim // 8) // 2 * 2)
        rows = (self.head_dim - index) // 4 * 2
        return index, rows, self.head_dim - index - rows


def build_dit(shape: DiTShape):
    from diffusers import FluxTransformer2DModel

    dit = FluxTransformer2DModel(
        patch_size=1,
        in_channels=shape.in_channels,
        num_layers=shape.double_blocks,
        num_single_layers=shape.single_blocks,
        attention_head_dim=shape.head_dim,
        num_attention_heads=shape.heads,
        joint_attention_dim=shape.cond_dim,
        pooled_projection_dim=shape.pooled_dim,
        guidance_embeds=False,
        axes_dims_rope=shape.rope_axes(),
    )
    return zero_init(dit)


def zero_init(dit):
    """adaLN-Zero (Peebles and Xie, 2023): every block's modulation and the output layer start at
    zero, so each block starts as the identity and the first prediction is zero velocity. A
    DiT trained from scratch converges much faster this way."""
    for block in [*dit.transformer_blocks, *dit.single_transformer_blocks]:
        for norm in (getattr(block, "norm1", None), getattr(block, "norm1_context", None), getattr(block, "norm", None)):
            if norm is not None:
                torch.nn.init.zeros_(norm.linear.weight)
                torch.nn.init.zeros_(norm.linear.bias)
    torch.nn.init.zeros_(dit.norm_out.linear.weight)
    torch.nn.init.zeros_(dit.norm_out.linear.bias)
    torch.nn.init.zeros_(dit.proj_out.weight)
    torch.nn.init.zeros_(dit.proj_out.bias)
    return dit


def load_dit(ref: str, revision: str | None = None):
    """A FLUX-style transformer checkpoint (a pipeline folder with transformer/, or the
    transformer folder itself) as the initialisation: its text-to-image weights are the
    starting point Step1X-Edit trains from."""
    from diffusers import FluxTransformer2DModel

    try:
        return FluxTransformer2DModel.from_pretrained(ref, subfolder="transformer", revision=revision, use_safetensors=True)
    except (OSError, EnvironmentError):
        return FluxTransformer2DModel.from_pretrained(ref, revision=revision, use_safetensors=True)


def shape_of(dit) -> DiTShape:
    c = dit.config
    return DiTShape(
        in_channels=c.in_channels, double_blocks=c.num_layers, single_blocks=c.num_single_layers,
        heads=c.num_attention_heads, head_dim=c.attention_head_dim, cond_dim=c.joint_attention_dim,
        pooled_dim=c.pooled_projection_dim,
    )


def image_ids(grid: tuple[int, int], axis: float) -> torch.Tensor:
    rows, cols = grid
    ids = torch.zeros(rows, cols, 3)
    ids[..., 0] = axis
    ids[..., 1] = torch.arange(rows)[:, None]
    ids[..., 2] = torch.arange(cols)[None, :]
    return ids.view(rows * cols, 3)


def dit_velocity(dit, noisy_target: torch.Tensor, source: torch.Tensor, cond: torch.Tensor, pooled: torch.Tensor,
                 t: torch.Tensor, grid: tuple[int, int], guidance: float = 1.0) -> torch.Tensor:
    """The predicted velocity of the target tokens; the source tokens ride along as context."""
    n = noisy_target.shape[1]
    device = noisy_target.device
    img_ids = torch.cat([image_ids(grid, TARGET_AXIS), image_ids(grid, SOURCE_AXIS)]).to(device)
    txt_ids = torch.zeros(cond.shape[1], 3, device=device)
    extra = {}
    if dit.config.guidance_embeds:  # a guidance-distilled checkpoint (FLUX.1-dev) wants a value
        extra["guidance"] = torch.full((noisy_target.shape[0],), guidance, device=device)
    out = dit(
        hidden_states=torch.cat([noisy_target, source], dim=1),
        encoder_hidden_states=cond,
        pooled_projections=pooled,
        timestep=t,
        img_ids=img_ids,
        txt_ids=txt_ids,
        return_dict=False,
        **extra,
    )[0]
    return out[:, :n]


def describe(shape: DiTShape) -> dict:
    return {**asdict(shape), "rope_axes": list(shape.rope_axes())}
