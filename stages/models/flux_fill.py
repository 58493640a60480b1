"""Masked inpainting with FLUX.1-Fill: a prompt per row, a seed per row, the result pasted back so
nothing outside the (slightly dilated) mask changes.

Usage checked against the black-forest-labs/FLUX.1-Fill-dev card and the same example in
diffusers' pipelines/flux/pipeline_flux_fill.py (EXAMPLE_DOC_STRING): `FluxFillPipeline` in
bfloat16, `image` and `mask_image` (white = fill), guidance_scale=30, max_sequence_length=512, a
CPU generator; the card runs 50 steps, `model_stages.flux_fill.steps` trades that for 28."""

from __future__ import annotations

import numpy as np

from pipeline.core.rows import record_stage
from pipeline.core.stage import ModelUse, Resources, Row
from stages.diffusion_common import (
    DiffusionEditStage,
    dilate,
    edit_prompt,
    generate_by_size,
    load_pipeline,
    paste_inside,
    read_source_and_mask,
    resize_mask,
    resize_rgb,
    row_seed,
    to_uint8,
    working_size,
    write_target,
)
from stages.models.torch_device import device_and_dtype


class FluxFillStage(DiffusionEditStage):
    name = "flux_fill"
    reads = ("source_image", "mask", "edit", "sample_id")
    writes = ("target_image", "provenance")
    model = ModelUse("flux_fill", "flux_fill")

    def __init__(
        self,
        model_ref: str,
        tasks: tuple[str, ...] | None,
        revision: str | None = None,
        steps: int = 28,
        guidance: float = 30.0,
        resolution: int = 1024,
        base_seed: int = 0,
        mask_dilate_px: int = 8,
        feather_px: int = 4,
        max_sequence_length: int = 512,
        resources: Resources | None = None,
    ):
        super().__init__(tasks, revision, steps, guidance, resolution, base_seed, feather_px, max_sequence_length, resources)
        self.model_ref = str(model_ref)
        self.mask_dilate_px = mask_dilate_px

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["flux_fill"]
        return cls(
            ref, tasks, revision, steps=params["steps"], guidance=params["guidance"], resolution=params["resolution"],
            base_seed=cfg["run"]["seed"],
        )

    def setup(self) -> None:
        from diffusers import FluxFillPipeline

        self.device, self.dtype = device_and_dtype()
        self.pipe = load_pipeline(FluxFillPipeline, self.model_ref, self.revision, self.device, self.dtype)
        # latents are 2x2-packed after the VAE's downsampling
        self.multiple = self.pipe.vae_scale_factor * 2

    def _prepare(self, row: Row) -> dict:
        source, mask = read_source_and_mask(row)
        if mask is None:
            raise ValueError("flux_fill needs a mask")
        if not mask.any():
            raise ValueError("mask is empty")
        region = dilate(mask, self.mask_dilate_px)
        size = working_size(*source.shape[:2], self.resolution, self.multiple)
        seed = row_seed(row["sample_id"], self.base_seed)
        return {"source": source, "region": region, "size": size, "seed": seed, "prompt": edit_prompt(row)}

    def _generate(self, items: list[dict], size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        result = self.pipe(
            image=[Image.fromarray(resize_rgb(it["source"], size)) for it in items],
            mask_image=[Image.fromarray(resize_mask(it["region"], size).astype(np.uint8) * 255) for it in items],
            **self.sampling_args(items, size),
        )
        return to_uint8(result.images)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        items = [self._prepare(row) for row in rows]
        for i, size, image in generate_by_size(items, self._generate):
            item, row = items[i], rows[i]
            write_target(row, paste_inside(item["source"], image, item["region"], self.feather_px))
            record_stage(
                row,
                self.name,
                model=self.model_ref,
                mask_dilate_px=self.mask_dilate_px,
                feather_px=self.feather_px,
                **self.generation_record(item, size),
            )
        return rows
