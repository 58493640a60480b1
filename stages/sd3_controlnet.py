"""SD3.5 with a depth or canny ControlNet: the whole picture is regenerated under the prompt while
the control image holds its structure; with a mask, only the masked part is kept."""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

from pipeline import schema
from stages.base import Resources, Row, Stage
from stages.flux_fill import device_and_dtype, edit_prompt, paste_inside, resize_rgb, row_generator, row_seed, to_uint8, working_size
from stages.image_io import decode_mask, decode_png, encode_png
from stages.rows import record_stage
from stages.zoedepth import read_depth

CONTROLS = ("depth", "canny")


def render_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth as the grey 3-channel picture depth ControlNets are trained on: inverse depth stretched
    to 0..255, near white and far black. A flat map renders black."""
    depth = np.asarray(depth_m, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return np.zeros(depth.shape + (3,), np.uint8)
    inverse = np.zeros_like(depth)
    inverse[valid] = 1.0 / depth[valid]
    low, high = inverse[valid].min(), inverse[valid].max()
    if high - low <= 1e-12:
        return np.zeros(depth.shape + (3,), np.uint8)
    grey = np.where(valid, (inverse - low) / (high - low), 0.0)
    grey = np.round(grey * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def canny_edges(rgb: np.ndarray, low: int, high: int) -> np.ndarray:
    """White Canny edges on black, 3 channels, as canny ControlNets expect."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


class SD3ControlNetStage(Stage):
    name = "sd3_controlnet"
    uses_model = True

    def __init__(
        self,
        base_ref: str,
        controlnet_ref: str,
        control: str,
        tasks: tuple[str, ...] | None,
        revision: str | None = None,
        controlnet_revision: str | None = None,
        steps: int = 28,
        guidance: float = 4.5,  # SD3.5 is run at lower CFG than SD3 (pipeline default 7.0)
        conditioning_scale: float = 0.8,
        resolution: int = 1024,
        base_seed: int = 0,
        feather_px: int = 4,
        canny_low: int = 100,
        canny_high: int = 200,
        negative_prompt: str = "",
        max_sequence_length: int = 256,
        batch_size: int = 2,
    ):
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {CONTROLS}, not {control!r}")
        self.base_ref = str(base_ref)
        self.controlnet_ref = str(controlnet_ref)
        self.control = control
        self.tasks = tasks
        self.revision = revision
        self.controlnet_revision = controlnet_revision
        self.steps = steps
        self.guidance = guidance
        self.conditioning_scale = conditioning_scale
        self.resolution = resolution
        self.base_seed = base_seed
        self.feather_px = feather_px
        self.canny_low = canny_low
        self.canny_high = canny_high
        self.negative_prompt = negative_prompt
        self.max_sequence_length = max_sequence_length
        self.resources = Resources(num_cpus=0.5, num_gpus=1.0, batch_size=batch_size)

    def setup(self) -> None:
        from diffusers import SD3ControlNetModel, StableDiffusion3ControlNetPipeline

        self.device, self.dtype = device_and_dtype()
        controlnet = SD3ControlNetModel.from_pretrained(self.controlnet_ref, revision=self.controlnet_revision, use_safetensors=True, dtype=self.dtype)
        pipe = StableDiffusion3ControlNetPipeline.from_pretrained(
            self.base_ref, controlnet=controlnet, revision=self.revision, use_safetensors=True, dtype=self.dtype
        )
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self.multiple = self.pipe.vae_scale_factor * self.pipe.transformer.config.patch_size

    def control_image(self, row: Row, source_at_size: np.ndarray) -> np.ndarray:
        """The conditioning picture at the working size."""
        if self.control == "canny":
            return canny_edges(source_at_size, self.canny_low, self.canny_high)
        depth = read_depth(row)
        if depth is None:
            raise ValueError("no depth map on the row; the depth stage must run first")
        return resize_rgb(render_depth(depth), source_at_size.shape[:2])

    def _prepare(self, row: Row) -> dict:
        source = decode_png(row["source_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"]) if row.get("mask") and row["mask"].get("bytes") else None
        if mask is not None and mask.shape != source.shape[:2]:
            raise ValueError(f"mask {mask.shape} does not match the image {source.shape[:2]}")
        size = working_size(*source.shape[:2], self.resolution, self.multiple)
        return {
            "source": source,
            "mask": mask,
            "size": size,
            "control": self.control_image(row, resize_rgb(source, size)),
            "seed": row_seed(row["sample_id"], self.base_seed),
            "prompt": edit_prompt(row),
        }

    def _generate(self, items: list[dict], size: tuple[int, int]) -> np.ndarray:
        import torch
        from PIL import Image

        # The pipeline samples the control image's VAE latent from the global generator; seed it
        # so a batch is reproducible (the denoising noise itself comes from the per-row generators).
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(items[0]["seed"])
            result = self.pipe(
                prompt=[it["prompt"] for it in items],
                negative_prompt=[self.negative_prompt] * len(items),
                control_image=[Image.fromarray(it["control"]) for it in items],
                controlnet_conditioning_scale=self.conditioning_scale,
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
                target = resize_rgb(image, item["source"].shape[:2])
                if item["mask"] is not None:
                    target = paste_inside(item["source"], target, item["mask"], self.feather_px)
                row["target_image"] = schema.image_value(encode_png(target))
                record_stage(
                    row,
                    self.name,
                    model=self.base_ref,
                    revision=self.revision,
                    controlnet=self.controlnet_ref,
                    controlnet_revision=self.controlnet_revision,
                    control=self.control,
                    dtype=str(self.dtype).removeprefix("torch."),
                    seed=item["seed"],
                    base_seed=self.base_seed,
                    steps=self.steps,
                    guidance=self.guidance,
                    conditioning_scale=self.conditioning_scale,
                    size=[size[1], size[0]],
                    masked=item["mask"] is not None,
                    prompt=item["prompt"],
                )
        return rows
