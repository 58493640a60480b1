"""Tiny random-weight SD3.5-style base pipeline plus two ControlNets (depth, canny), each in its own
folder, laid out like stabilityai/stable-diffusion-3.5-large and its -controlnet-depth/-canny repos."""

from __future__ import annotations

import pathlib

import torch

from stages.models.tiny.flux_fill import (
    clip_text_model,
    clip_tokenizer,
    t5_encoder,
    t5_tokenizer,
    vae,
)

BASE = "base"
CONTROLNETS = {"depth": "controlnet-depth", "canny": "controlnet-canny"}

_HEADS, _HEAD_DIM = 2, 8
_LATENT_CHANNELS = 4


def _controlnet(seed: int):
    from diffusers.models import SD3ControlNetModel

    torch.manual_seed(seed)
    # Like the official SD3.5 ControlNets: no patch embedding or text context of its own (it borrows
    # the transformer's), and it sees the real pooled text projection.
    controlnet = SD3ControlNetModel(
        sample_size=32,
        patch_size=2,
        in_channels=_LATENT_CHANNELS,
        num_layers=1,
        attention_head_dim=_HEAD_DIM,
        num_attention_heads=_HEADS,
        joint_attention_dim=None,
        caption_projection_dim=_HEADS * _HEAD_DIM,
        pooled_projection_dim=32,
        out_channels=_LATENT_CHANNELS,
        pos_embed_max_size=None,
        pos_embed_type=None,
        use_pos_embed=False,
        force_zeros_for_pooled_projection=False,
    )
    # A fresh ControlNet starts with zeroed input and output layers and so has no effect; random
    # weights there let a test see the control image change the result.
    with torch.no_grad():
        for param in controlnet.parameters():
            if not param.any():
                param.normal_(0.0, 0.5)
    return controlnet


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Writes dest/base, dest/controlnet-depth and dest/controlnet-canny; returns dest."""
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    torch.manual_seed(seed)
    tokenizer, tokenizer_3 = clip_tokenizer(), t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=2,
        in_channels=_LATENT_CHANNELS,
        num_layers=2,
        attention_head_dim=_HEAD_DIM,
        num_attention_heads=_HEADS,
        joint_attention_dim=32,  # T5 width; the two CLIP hidden states (16 + 16) are padded to it
        caption_projection_dim=_HEADS * _HEAD_DIM,
        pooled_projection_dim=32,  # the two CLIP projections side by side
        out_channels=_LATENT_CHANNELS,
        pos_embed_max_size=32,
        dual_attention_layers=(0,),
        qk_norm="rms_norm",
    )
    base = StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        vae=vae(_LATENT_CHANNELS, shift_factor=0.0609),
        text_encoder=clip_text_model(len(tokenizer), 16, with_projection=True),
        tokenizer=tokenizer,
        text_encoder_2=clip_text_model(len(tokenizer), 16, with_projection=True),
        tokenizer_2=tokenizer,
        text_encoder_3=t5_encoder(len(tokenizer_3), 32),
        tokenizer_3=tokenizer_3,
    )
    root = pathlib.Path(dest)
    base.save_pretrained(root / BASE, safe_serialization=True)
    for offset, folder in enumerate(CONTROLNETS.values(), start=1):
        _controlnet(seed + offset).save_pretrained(root / folder, safe_serialization=True)
    return root
