"""Masked inpainting with FLUX.1-Fill: a prompt per row, a seed per row, the result pasted back so
nothing outside the (slightly dilated) mask changes.

The seed, working-size and paste helpers here are shared with the SD3 ControlNet stage."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict

import cv2
import numpy as np

from pipeline import schema
from stages.base import Resources, Row, Stage
from stages.image_io import decode_mask, decode_png, encode_png
from stages.lab_recolor import inner_alpha
from stages.rows import record_stage


def row_seed(sample_id: str, base_seed: int) -> int:
    """Stable per row and independent of batching: the same row and base seed always draw the same noise."""
    digest = hashlib.sha256(f"{base_seed}|{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def row_generator(seed: int):
    import torch

    # A CPU generator gives the same noise on every device; diffusers moves the noise over.
    return torch.Generator("cpu").manual_seed(seed)


def working_size(height: int, width: int, resolution: int, multiple: int) -> tuple[int, int]:
    """About resolution**2 pixels, the source's aspect ratio, both sides a multiple the model accepts."""
    scale = resolution / math.sqrt(height * width)
    return (
        max(multiple, int(round(height * scale / multiple)) * multiple),
        max(multiple, int(round(width * scale / multiple)) * multiple),
    )


def resize_rgb(rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == tuple(size_hw):
        return rgb
    shrinking = size_hw[0] * size_hw[1] < rgb.shape[0] * rgb.shape[1]
    return cv2.resize(rgb, (size_hw[1], size_hw[0]), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def resize_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.uint8), (size_hw[1], size_hw[0]), interpolation=cv2.INTER_NEAREST).astype(bool)


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    if px <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def paste_inside(source: np.ndarray, generated: np.ndarray, region: np.ndarray, feather_px: int) -> np.ndarray:
    """Generated pixels inside `region` with a soft edge that stays inside it; the source, exactly, outside."""
    alpha = inner_alpha(region, feather_px)[..., None]
    out = np.round(source.astype(np.float32) * (1.0 - alpha) + generated.astype(np.float32) * alpha).astype(np.uint8)
    out[~region] = source[~region]
    return out


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The pipelines' float [0, 1] numpy output as uint8."""
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def device_and_dtype():
    import torch

    return ("cuda", torch.bfloat16) if torch.cuda.is_available() else ("cpu", torch.float32)


def edit_prompt(row: Row) -> str:
    prompt = schema.loads(row.get("edit")).get("prompt")
    if not prompt:
        raise ValueError("edit has no prompt for the generator")
    return prompt


class FluxFillStage(Stage):
    name = "flux_fill"
    uses_model = True

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
        batch_size: int = 2,
    ):
        self.model_ref = str(model_ref)
        self.revision = revision
        self.tasks = tasks
        self.steps = steps
        self.guidance = guidance
        self.resolution = resolution
        self.base_seed = base_seed
        self.mask_dilate_px = mask_dilate_px
        self.feather_px = feather_px
        self.max_sequence_length = max_sequence_length
        self.resources = Resources(num_cpus=0.5, num_gpus=1.0, batch_size=batch_size)

    def setup(self) -> None:
        from diffusers import FluxFillPipeline

        self.device, self.dtype = device_and_dtype()
        pipe = FluxFillPipeline.from_pretrained(self.model_ref, revision=self.revision, use_safetensors=True, dtype=self.dtype)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        # latents are 2x2-packed after the VAE's downsampling
        self.multiple = self.pipe.vae_scale_factor * 2

    def _prepare(self, row: Row) -> dict:
        source = decode_png(row["source_image"]["bytes"])
        if row.get("mask") is None:
            raise ValueError("flux_fill needs a mask")
        mask = decode_mask(row["mask"]["bytes"])
        if mask.shape != source.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match the image {source.shape[:2]}")
        if not mask.any():
            raise ValueError("mask is empty")
        region = dilate(mask, self.mask_dilate_px)
        size = working_size(*source.shape[:2], self.resolution, self.multiple)
        seed = row_seed(row["sample_id"], self.base_seed)
        return {"source": source, "region": region, "size": size, "seed": seed, "prompt": edit_prompt(row)}

    def _generate(self, items: list[dict], size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        result = self.pipe(
            prompt=[it["prompt"] for it in items],
            image=[Image.fromarray(resize_rgb(it["source"], size)) for it in items],
            mask_image=[Image.fromarray(resize_mask(it["region"], size).astype(np.uint8) * 255) for it in items],
            height=size[0],
            width=size[1],
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=[row_generator(it["seed"]) for it in items],
            max_sequence_length=self.max_sequence_length,
            output_type="np",
        )
        return to_uint8(result.images)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        items = [self._prepare(row) for row in rows]
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, item in enumerate(items):
            by_size[item["size"]].append(i)
        for size, members in by_size.items():
            generated = self._generate([items[i] for i in members], size)
            for i, image in zip(members, generated):
                item, row = items[i], rows[i]
                image = resize_rgb(image, item["source"].shape[:2])
                target = paste_inside(item["source"], image, item["region"], self.feather_px)
                row["target_image"] = schema.image_value(encode_png(target))
                record_stage(
                    row,
                    self.name,
                    model=self.model_ref,
                    revision=self.revision,
                    dtype=str(self.dtype).removeprefix("torch."),
                    seed=item["seed"],
                    base_seed=self.base_seed,
                    steps=self.steps,
                    guidance=self.guidance,
                    size=[size[1], size[0]],
                    mask_dilate_px=self.mask_dilate_px,
                    feather_px=self.feather_px,
                    prompt=item["prompt"],
                )
        return rows
