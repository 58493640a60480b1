"""A tiny random-weight FLUX.1 Kontext pipeline folder, same classes as
black-forest-labs/FLUX.1-Kontext-dev.

The transformer shape, tokenizers, text encoders and VAE are the Flux-Fill twin's. Kontext joins the context
image's latents to the noisy latents along the sequence, not the channels, so the transformer
takes the plain packed latent width."""

from __future__ import annotations

import pathlib

import torch

from stages.models.tiny.flux_fill import flux_components, vae


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from diffusers import FluxKontextPipeline

    torch.manual_seed(seed)
    latent_channels = 4
    packed_latents = latent_channels * 4  # 2x2 patches; the context image joins along the sequence
    pipe = FluxKontextPipeline(**flux_components(vae(latent_channels, shift_factor=0.1159), packed_latents, packed_latents))
    folder = pathlib.Path(dest)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
