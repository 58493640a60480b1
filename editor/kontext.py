"""FLUX.1 Kontext as the baseline editor that `verify --editor flux-kontext` scores against:
load the pipeline once, then edit (source, instruction) pairs and hand back pictures at the
scoring size.

Kontext was trained near one megapixel on a fixed list of resolutions; diffusers'
`FluxKontextPipeline` (pipelines/flux/pipeline_flux_kontext.py, `PREFERRED_KONTEXT_RESOLUTIONS`
and `_auto_resize`) snaps the context image to the one nearest its aspect ratio and generates at
`max_area` = 1024**2. So by default each source is edited at that preferred resolution and the
result resized to the scoring size; `generate_px` squares everything to a small side instead,
for the tiny twin in tests."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stages.diffusion_common import load_pipeline, resize_rgb, row_generator, to_uint8
from stages.models.torch_device import device_and_dtype, dtype_for

if TYPE_CHECKING:
    from diffusers import FluxKontextPipeline

# Kontext-dev's VAE downsamples 8x and the transformer packs 2x2 latent patches.
SIZE_MULTIPLE = 16


def load_kontext(ref: str, revision: str | None = None, device: str | None = None) -> "FluxKontextPipeline":
    """The pipeline through diffusers' own `from_pretrained` (safetensors only) at the precision
    every model stage uses (stages/models/torch_device.py: bfloat16 on CUDA, float32 on the CPU
    unless PIPELINE_TORCH_DTYPE says otherwise), progress bars off."""
    import torch
    from diffusers import FluxKontextPipeline

    device = torch.device(device) if device is not None else device_and_dtype()[0]
    dtype = dtype_for(device)
    return load_pipeline(FluxKontextPipeline, ref, revision, device, dtype)


def size_multiple(pipe) -> int:
    """What `size` must divide by: 16 for the real model, and whatever a twin's VAE needs too."""
    return math.lcm(SIZE_MULTIPLE, pipe.vae_scale_factor * 2)


def check_size(pipe, size: int) -> None:
    multiple = size_multiple(pipe)
    if not isinstance(size, int) or size <= 0 or size % multiple:
        raise ValueError(f"kontext_edit: size must be a positive multiple of {multiple} (the latent patch grid), got {size!r}")


def preferred_resolution(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the Kontext training resolution nearest this aspect ratio, chosen the
    way the pipeline's `_auto_resize` chooses it."""
    from diffusers.pipelines.flux.pipeline_flux_kontext import (
        PREFERRED_KONTEXT_RESOLUTIONS,
    )

    _, w, h = min((abs(width / height - w / h), w, h) for w, h in PREFERRED_KONTEXT_RESOLUTIONS)
    return h, w


def generation_size(source: np.ndarray, generate_px: int | None) -> tuple[int, int]:
    if generate_px is None:
        return preferred_resolution(*source.shape[:2])
    return generate_px, generate_px


def kontext_edit(
    pipe,
    sources: list[np.ndarray],
    instructions: list[str],
    size: int,
    steps: int = 28,
    guidance: float = 2.5,
    seed: int = 0,
    batch_size: int = 4,
    generate_px: int | None = None,
) -> list[np.ndarray]:
    """Each source (uint8 HxWx3, any size) edited with its instruction, at Kontext's preferred
    resolution for its aspect ratio (or squared to generate_px), then resized to size x size for
    scoring; returns uint8 size x size x 3 arrays in input order. Sources that share a generation
    size run in batches together; one generator per call, so a seed gives the same pictures for
    the same inputs and batch size."""
    from PIL import Image

    check_size(pipe, size)
    if generate_px is not None:
        check_size(pipe, generate_px)
    if len(sources) != len(instructions):
        raise ValueError(f"kontext_edit: {len(sources)} sources but {len(instructions)} instructions")
    if batch_size < 1:
        raise ValueError(f"kontext_edit: batch_size must be at least 1, got {batch_size}")
    generator = row_generator(seed)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, source in enumerate(sources):
        groups.setdefault(generation_size(np.asarray(source), generate_px), []).append(i)
    edited: list[np.ndarray | None] = [None] * len(sources)
    for (height, width), members in groups.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            images = [Image.fromarray(resize_rgb(np.asarray(sources[i], np.uint8), (height, width))) for i in chunk]
            result = pipe(
                image=images,
                prompt=[instructions[i] for i in chunk],
                height=height,
                width=width,
                # the context is already at the generation size and the output area is exactly it,
                # so the pipeline neither re-snaps the context nor rescales the output
                max_area=height * width,
                _auto_resize=False,
                num_inference_steps=steps,
                guidance_scale=guidance,
                generator=generator,
                output_type="np",
            )
            for i, image in zip(chunk, to_uint8(result.images)):
                edited[i] = resize_rgb(image, (size, size))
    return edited  # type: ignore[return-value]
