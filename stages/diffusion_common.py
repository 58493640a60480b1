"""What the diffusion edit stages (Flux-Fill, SD3 ControlNet) share: a seed per row, the working
size, the mask read and paste-back, the pipeline load, one pipeline call per working size, and
the sampling settings with what gets recorded of them."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Any, Callable, Iterator

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.mask_ops import dilate  # noqa: F401 - part of this module's helpers
from pipeline.core.stage import ModelStage, Resources, Row
from stages.lab_recolor import inner_alpha
from stages.models.torch_device import dtype_name

# (items of one working size, that size) -> uint8 pictures at that size, one per item
GenerateFn = Callable[[list[dict], tuple[int, int]], np.ndarray]


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


def paste_inside(source: np.ndarray, generated: np.ndarray, region: np.ndarray, feather_px: int) -> np.ndarray:
    """Generated pixels inside `region` with a soft edge that stays inside it; the source, exactly, outside."""
    alpha = inner_alpha(region, feather_px)[..., None]
    out = np.round(source.astype(np.float32) * (1.0 - alpha) + generated.astype(np.float32) * alpha).astype(np.uint8)
    out[~region] = source[~region]
    return out


def to_uint8(images: np.ndarray) -> np.ndarray:
    """The pipelines' float [0, 1] numpy output as uint8."""
    return np.clip(np.round(images * 255.0), 0, 255).astype(np.uint8)


def edit_prompt(row: Row) -> str:
    prompt = schema.loads(row.get("edit")).get("prompt")
    if not prompt:
        raise ValueError("edit has no prompt for the generator")
    return prompt


def read_source_and_mask(row: Row) -> tuple[np.ndarray, np.ndarray | None]:
    """The row's source picture and its mask (None when the row carries none), checked to match."""
    source = decode_image(row["source_image"]["bytes"])
    value = row.get("mask")
    mask = decode_mask(value["bytes"]) if value and value.get("bytes") else None
    if mask is not None and mask.shape != source.shape[:2]:
        raise ValueError(f"mask {mask.shape} does not match the image {source.shape[:2]}")
    return source, mask


def load_pipeline(pipeline_class: Any, model_ref: str, revision: str | None, device: Any, dtype: Any, **components: Any):
    """A diffusers pipeline through its own `from_pretrained` (safetensors only), quiet, on the
    device, every component in `dtype`."""
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()  # the loading bar, once per actor, in every run's log
    pipe = pipeline_class.from_pretrained(model_ref, revision=revision, use_safetensors=True, dtype=dtype, **components)
    pipe.set_progress_bar_config(disable=True)
    # from_pretrained casts weights saved in another precision only on accelerate's loading path
    # (without it the SD3 transformer stayed float32 beside a bfloat16 VAE); the pipeline's own
    # `to` makes every component the requested precision either way
    return pipe.to(device=device, dtype=dtype)


def generate_by_size(items: list[dict], generate: GenerateFn) -> Iterator[tuple[int, tuple[int, int], np.ndarray]]:
    """One pipeline call per working size (a batch must share one), in order of first appearance.
    Yields (item index, working size, the generated picture back at the item's source size)."""
    by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        by_size[item["size"]].append(i)
    for size, members in by_size.items():
        generated = generate([items[i] for i in members], size)
        for i, image in zip(members, generated):
            yield i, size, resize_rgb(image, items[i]["source"].shape[:2])


def write_target(row: Row, target: np.ndarray) -> None:
    row["target_image"] = schema.image_value(encode_image(target))


class DiffusionEditStage(ModelStage):
    """A stage that draws each row's target with a diffusion pipeline: one whole GPU, and the
    sampling settings every such model takes. Items are dicts with at least source, size, seed
    and prompt."""

    def __init__(
        self,
        tasks: tuple[str, ...] | None,
        revision: str | None,
        steps: int,
        guidance: float,
        resolution: int,
        base_seed: int,
        feather_px: int,
        max_sequence_length: int,
        resources: Resources | None,
    ):
        self.tasks = tasks
        self.revision = revision
        self.steps = steps
        self.guidance = guidance
        self.resolution = resolution
        self.base_seed = base_seed
        self.feather_px = feather_px
        self.max_sequence_length = max_sequence_length
        self.resources = resources or self.resources

    def sampling_args(self, items: list[dict], size: tuple[int, int]) -> dict[str, Any]:
        """The pipeline arguments every model takes alike: prompts, size, schedule, a generator per row."""
        return {
            "prompt": [it["prompt"] for it in items],
            "height": size[0],
            "width": size[1],
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance,
            "generator": [row_generator(it["seed"]) for it in items],
            "max_sequence_length": self.max_sequence_length,
            "output_type": "np",
        }

    def generation_record(self, item: dict, size: tuple[int, int]) -> dict[str, Any]:
        """What every such stage records of a generated row, beside its model-specific settings."""
        return {
            "revision": self.revision,
            "dtype": dtype_name(self.dtype),
            "seed": item["seed"],
            "base_seed": self.base_seed,
            "steps": self.steps,
            "guidance": self.guidance,
            "size": [size[1], size[0]],
            "prompt": item["prompt"],
        }
