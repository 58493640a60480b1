"""The registry's parameter counts, which `plan` turns into GPU memory, checked against the real
architectures built on the meta device (no memory, no weights) where that is cheap, and pinned
for the rest to the counts in docs/bench/gpu_full_size_h200.jsonl."""

import pytest
import torch

from pipeline.core import models

# family -> billions of parameters, each checked once against its architecture (see models.yaml)
PINNED = {
    "florence2": 0.77, "sam2": 0.22, "siglip": 1.14, "qwen2_5_vl": 8.29, "zoedepth": 0.335,
    "flux_fill": 16.9, "sd3_5": 13.72, "controlnet_depth": 2.15, "controlnet_canny": 2.15,
    "dinov2": 0.022, "clip": 0.43, "flux_kontext": 16.9,
}


def billions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e9


def test_every_registry_size_is_the_checked_one():
    assert {family: entry.params_b for family, entry in models.registry().items()} == PINNED


def test_sd3_5_controlnets_are_2_2b_not_1_1b():
    """The hub's SD3.5-Large ControlNets hold 19 single-stream blocks at the base model's width
    (diffusers' scripts/convert_sd3_controlnet_to_diffusers.py builds exactly this)."""
    from diffusers import SD3ControlNetModel

    with torch.device("meta"):
        controlnet = SD3ControlNetModel(
            patch_size=2, in_channels=16, num_layers=19, attention_head_dim=64, num_attention_heads=38,
            joint_attention_dim=None, caption_projection_dim=2048, pooled_projection_dim=2048, out_channels=16,
            pos_embed_max_size=None, pos_embed_type=None, use_pos_embed=False, force_zeros_for_pooled_projection=False,
        )
    for family in ("controlnet_depth", "controlnet_canny"):
        assert models.registry()[family].params_b == pytest.approx(billions(controlnet), rel=0.01)


def test_sd3_5_large_counts_its_text_encoders_and_vae():
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModelWithProjection,
        T5Config,
        T5EncoderModel,
    )

    with torch.device("meta"):
        parts = [
            SD3Transformer2DModel(
                sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64, num_attention_heads=38,
                joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16,
                pos_embed_max_size=192, qk_norm="rms_norm",
            ),
            T5EncoderModel(T5Config(d_model=4096, d_ff=10240, num_layers=24, num_heads=64, d_kv=64, vocab_size=32128, feed_forward_proj="gated-gelu")),
            CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768)),
            CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20, projection_dim=1280)),
            AutoencoderKL(latent_channels=16, block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                          up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, use_quant_conv=False, use_post_quant_conv=False),
        ]
    assert models.registry()["sd3_5"].params_b == pytest.approx(sum(billions(p) for p in parts), rel=0.01)
