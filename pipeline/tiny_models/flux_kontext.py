"""A tiny random-weight FLUX.1 Kontext pipeline folder, same classes as
black-forest-labs/FLUX.1-Kontext-dev.

The tokenizers, text encoders and VAE come from the Flux-Fill twin. Kontext joins the context
image's latents to the noisy latents along the sequence, not the channels, so the transformer
takes the plain packed latent width."""

from __future__ import annotations

import pathlib

import torch

from pipeline.tiny_models.flux_fill import clip_text_model, clip_tokenizer, t5_encoder, t5_tokenizer, vae


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    latent_channels = 4
    packed_latents = latent_channels * 4  # 2x2 patches
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=packed_latents,
        out_channels=packed_latents,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,  # Kontext-dev is guidance-distilled
        axes_dims_rope=(4, 6, 6),
    )
    pipe = FluxKontextPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
        vae=vae(latent_channels, shift_factor=0.1159),
        text_encoder=clip_text_model(len(tokenizer), 32, with_projection=False),
        tokenizer=tokenizer,
        text_encoder_2=t5_encoder(len(tokenizer_2), 32),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    folder = pathlib.Path(dest)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
