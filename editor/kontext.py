"""FLUX.1 Kontext as the baseline editor that `verify --editor flux-kontext` scores against:
load the pipeline once, then edit (source, instruction) pairs at one square size."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stages.diffusion_common import load_pipeline, resize_rgb, row_generator, to_uint8

if TYPE_CHECKING:
    from diffusers import FluxKontextPipeline

# Kontext-dev's VAE downsamples 8x and the transformer packs 2x2 latent patches.
SIZE_MULTIPLE = 16


def load_kontext(ref: str, revision: str | None = None, device: str | None = None) -> "FluxKontextPipeline":
    """The pipeline through diffusers' own `from_pretrained` (safetensors only): bfloat16 on CUDA,
    float32 on the CPU, progress bars off."""
    import torch
    from diffusers import FluxKontextPipeline

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    return load_pipeline(FluxKontextPipeline, ref, revision, device, dtype)


def size_multiple(pipe) -> int:
    """What `size` must divide by: 16 for the real model, and whatever a twin's VAE needs too."""
    return math.lcm(SIZE_MULTIPLE, pipe.vae_scale_factor * 2)


def check_size(pipe, size: int) -> None:
    multiple = size_multiple(pipe)
    if not isinstance(size, int) or size <= 0 or size % multiple:
        raise ValueError(f"kontext_edit: size must be a positive multiple of {multiple} (the latent patch grid), got {size!r}")


def kontext_edit(
    pipe,
    sources: list[np.ndarray],
    instructions: list[str],
    size: int,
    steps: int = 28,
    guidance: float = 2.5,
    seed: int = 0,
    batch_size: int = 4,
) -> list[np.ndarray]:
    """Each source (uint8 HxWx3, any size) squared to size x size and edited with its
    instruction; returns uint8 size x size x 3 arrays in input order. One generator per call,
    so a seed gives the same pictures for the same inputs and batch size."""
    from PIL import Image

    check_size(pipe, size)
    if len(sources) != len(instructions):
        raise ValueError(f"kontext_edit: {len(sources)} sources but {len(instructions)} instructions")
    if batch_size < 1:
        raise ValueError(f"kontext_edit: batch_size must be at least 1, got {batch_size}")
    generator = row_generator(seed)
    edited: list[np.ndarray] = []
    for start in range(0, len(sources), batch_size):
        images = [Image.fromarray(resize_rgb(np.asarray(s, np.uint8), (size, size))) for s in sources[start : start + batch_size]]
        result = pipe(
            image=images,
            prompt=list(instructions[start : start + batch_size]),
            height=size,
            width=size,
            # Kontext rescales the output to max_area and the context to its preferred
            # resolutions unless told otherwise; both must stay at size x size.
            max_area=size * size,
            _auto_resize=False,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
            output_type="np",
        )
        edited.extend(to_uint8(result.images))
    return edited
