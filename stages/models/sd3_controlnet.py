"""SD3.5 with a depth or canny ControlNet: the whole picture is regenerated under the prompt while
the control image holds its structure; with a mask, only the masked part is kept.

Loading follows the checkpoints' cards (stabilityai/stable-diffusion-3.5-large-controlnet-depth
and -canny, "Usage with Diffusers"): `SD3ControlNetModel.from_pretrained(controlnet)` joined to
`StableDiffusion3ControlNetPipeline.from_pretrained(base, controlnet=...)`; the pipeline lends the
ControlNet the transformer's patch embedding (use_pos_embed is false for these 2.15B ControlNets).
The depth control image's convention is under `render_depth`."""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.core.rows import record_stage
from pipeline.core.stage import ModelUse, Resources, Row
from stages.diffusion_common import (
    DiffusionEditStage,
    edit_prompt,
    generate_by_size,
    load_pipeline,
    paste_inside,
    read_source_and_mask,
    resize_rgb,
    row_seed,
    to_uint8,
    working_size,
    write_target,
)
from stages.models.torch_device import device_and_dtype
from stages.models.zoedepth import read_depth

CONTROLS = ("depth", "canny")


def render_depth(depth_m: np.ndarray) -> np.ndarray:
    """Depth as the grey 3-channel picture the SD3.5-Large depth ControlNet was trained on: depth
    itself (not inverse depth), stretched per image to 0..255, near black and far white; pixels
    without a valid depth render as far. A flat map renders black.

    Why this convention (recorded as `control_image` in configs/models.yaml): the card names
    DepthFM as the preprocessor, and DepthFM's `predict_depth` (CompVis/depth-fm, depthfm/dfm.py,
    `forward`) returns per-sample min-max normalised depth in [0, 1], far high; the reference
    control image shipped for this checkpoint (Stability-AI/sd3.5, inputs/depth.png, used by its
    README's depth example) has the foreground rocks near 9/255, the figure near 75 and the sky
    near 190. Depth ControlNets of SD 1.5 read the opposite (MiDaS inverse depth, near white)."""
    depth = np.asarray(depth_m, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        return np.zeros(depth.shape + (3,), np.uint8)
    low, high = depth[valid].min(), depth[valid].max()
    if high - low <= 1e-12:
        return np.zeros(depth.shape + (3,), np.uint8)
    grey = np.where(valid, (depth - low) / (high - low), 1.0)
    grey = np.round(grey * 255.0).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def canny_edges(rgb: np.ndarray, low: int, high: int) -> np.ndarray:
    """White Canny edges on black, 3 channels, as canny ControlNets expect."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
    return np.repeat(edges[..., None], 3, axis=2)


class SD3ControlNetStage(DiffusionEditStage):
    name = "sd3_controlnet"
    reads = ("source_image", "mask?", "edit", "sample_id")
    writes = ("target_image", "provenance")

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
        resources: Resources | None = None,
    ):
        if control not in CONTROLS:
            raise ValueError(f"control must be one of {CONTROLS}, not {control!r}")
        super().__init__(tasks, revision, steps, guidance, resolution, base_seed, feather_px, max_sequence_length, resources)
        self.base_ref = str(base_ref)
        self.controlnet_ref = str(controlnet_ref)
        self.control = control
        self.controlnet_revision = controlnet_revision
        self.conditioning_scale = conditioning_scale
        self.canny_low = canny_low
        self.canny_high = canny_high
        self.negative_prompt = negative_prompt

    def setup(self) -> None:
        from diffusers import SD3ControlNetModel, StableDiffusion3ControlNetPipeline

        self.device, self.dtype = device_and_dtype()
        controlnet = SD3ControlNetModel.from_pretrained(self.controlnet_ref, revision=self.controlnet_revision, use_safetensors=True, dtype=self.dtype)
        self.pipe = load_pipeline(
            StableDiffusion3ControlNetPipeline, self.base_ref, self.revision, self.device, self.dtype, controlnet=controlnet
        )
        # the ControlNet pipeline checks sides against 8 as well as the latent patch grid
        self.multiple = math.lcm(8, self.pipe.vae_scale_factor * self.pipe.transformer.config.patch_size)

    def control_image(self, row: Row, source_at_size: np.ndarray) -> np.ndarray:
        """The conditioning picture at the working size."""
        if self.control == "canny":
            return canny_edges(source_at_size, self.canny_low, self.canny_high)
        depth = read_depth(row)
        if depth is None:
            raise ValueError("no depth map on the row; the depth stage must run first")
        return resize_rgb(render_depth(depth), source_at_size.shape[:2])

    def _prepare(self, row: Row) -> dict:
        source, mask = read_source_and_mask(row)
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
        devices = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(items[0]["seed"])
            result = self.pipe(
                negative_prompt=[self.negative_prompt] * len(items),
                control_image=[Image.fromarray(it["control"]) for it in items],
                controlnet_conditioning_scale=self.conditioning_scale,
                **self.sampling_args(items, size),
            )
        return to_uint8(result.images)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        items = [self._prepare(row) for row in rows]
        for i, size, target in generate_by_size(items, self._generate):
            item, row = items[i], rows[i]
            if item["mask"] is not None:
                target = paste_inside(item["source"], target, item["mask"], self.feather_px)
            write_target(row, target)
            record_stage(
                row,
                self.name,
                model=self.base_ref,
                controlnet=self.controlnet_ref,
                controlnet_revision=self.controlnet_revision,
                control=self.control,
                conditioning_scale=self.conditioning_scale,
                masked=item["mask"] is not None,
                **self.generation_record(item, size),
            )
        return rows


class _ControlNetFromConfig(SD3ControlNetStage):
    """SD3.5 Large with one ControlNet, built from `model_stages.sd3_controlnet`; the subclass
    names which control, so a depth and a canny stage are separate pools."""

    control_kind = ""

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        base_ref, base_revision = refs["sd3_5"]
        ref, revision = refs[cls.model.family]
        return cls(
            base_ref, ref, cls.control_kind, tasks, base_revision, revision, steps=params["steps"],
            guidance=params["guidance"], conditioning_scale=params["conditioning_scale"],
            resolution=params["resolution"], base_seed=cfg["run"]["seed"],
        )


class SD3DepthControlNetStage(_ControlNetFromConfig):
    model = ModelUse("controlnet_depth", "sd3_controlnet", extra_loads=("sd3_5",))
    control_kind = "depth"
    reads = (*SD3ControlNetStage.reads, "blob.depth", "work.depth_metres_per_unit")  # the depth stage's map


class SD3CannyControlNetStage(_ControlNetFromConfig):
    model = ModelUse("controlnet_canny", "sd3_controlnet", extra_loads=("sd3_5",))
    control_kind = "canny"
