"""SD3.5 with a depth or canny ControlNet: the whole picture is regenerated under the prompt while
the control image holds its structure; with a mask, only the masked part is kept.

Loading follows the checkpoints' cards (stabilityai/stable-diffusion-3.5-large-controlnet-depth
and -canny, "Usage with Diffusers"): `SD3ControlNetModel.from_pretrained(controlnet)` joined to
`StableDiffusion3ControlNetPipeline.from_pretrained(base, controlnet=...)`; the pipeline lends the
ControlNet the transformer's patch embedding (use_pos_embed is false for these 2.15B ControlNets).
The depth control image's convention is under `render_depth`.

One actor can hold the base once and both ControlNets (`model_stages.sd3_controlnet.share_base`,
when the registry says they fit one GPU): the depth and canny stages then share a `share_key`, the
run's merge joins them (`merged_with`), and `setup` builds the second ControlNet's pipeline from the
first with `DiffusionPipeline.from_pipe`, which hands the same component objects to the new
pipeline (diffusers' "Load pipelines" guide, "Reuse a pipeline"; diffusers/pipelines/
pipeline_utils.py `from_pipe`), its constructor lending that ControlNet the patch embedding."""

from __future__ import annotations

import math

import cv2
import numpy as np

from pipeline.core import models
from pipeline.core.rows import record_stage
from pipeline.core.stage import ModelUse, Resources, Row, Stage
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
BASE_FAMILY = "sd3_5"
CONTROL_FAMILY = {"depth": "controlnet_depth", "canny": "controlnet_canny"}  # registry keys


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
        self.controlnet_ref = str(controlnet_ref)  # the first control's; a merged stage has one per control
        self.control = control
        self.controlnet_revision = controlnet_revision
        self.controlnets = {control: (self.controlnet_ref, controlnet_revision)}  # control -> (ref, revision)
        self.control_of_task = {task: control for task in tasks or ()}  # which ControlNet a task's rows get
        self.conditioning_scale = conditioning_scale
        self.canny_low = canny_low
        self.canny_high = canny_high
        self.negative_prompt = negative_prompt

    @property
    def loads(self) -> tuple[str, ...]:  # type: ignore[override]
        """The base once and each ControlNet this stage holds."""
        return (BASE_FAMILY, *(CONTROL_FAMILY[c] for c in self.controlnets))

    def merged_with(self, other: Stage) -> Stage:
        """One actor for both stages (equal share_key: the same base, weights and settings): the
        union of their tasks, ControlNets and reads; each task keeps its own ControlNet."""
        if not isinstance(other, SD3ControlNetStage):
            raise TypeError(f"cannot merge {type(other).__name__} into an SD3.5 ControlNet stage")
        shared = super().merged_with(other)
        shared.controlnets = {**self.controlnets, **other.controlnets}
        shared.control_of_task = {**self.control_of_task, **other.control_of_task}
        shared.reads = tuple(dict.fromkeys((*self.reads, *other.reads)))
        return shared

    def family_of_task(self, task: str) -> str:
        return CONTROL_FAMILY[self.control_of_task.get(task, self.control)]

    def setup(self) -> None:
        from diffusers import StableDiffusion3ControlNetPipeline

        self.device, self.dtype = device_and_dtype()
        first, *others = self.controlnets
        self.pipes = {
            first: load_pipeline(
                StableDiffusion3ControlNetPipeline, self.base_ref, self.revision, self.device, self.dtype, controlnet=self._load_controlnet(first)
            )
        }
        for control in others:  # the same base objects, another ControlNet: no second copy of the base
            controlnet = self._load_controlnet(control).to(device=self.device, dtype=self.dtype)
            pipe = StableDiffusion3ControlNetPipeline.from_pipe(self.pipes[first], controlnet=controlnet, dtype=self.dtype)
            pipe.set_progress_bar_config(disable=True)
            self.pipes[control] = pipe.to(device=self.device, dtype=self.dtype)
        self.pipe = self.pipes[first]
        # the ControlNet pipeline checks sides against 8 as well as the latent patch grid
        self.multiple = math.lcm(8, self.pipe.vae_scale_factor * self.pipe.transformer.config.patch_size)

    def _load_controlnet(self, control: str):
        from diffusers import SD3ControlNetModel

        ref, revision = self.controlnets[control]
        return SD3ControlNetModel.from_pretrained(ref, revision=revision, use_safetensors=True, dtype=self.dtype)

    def control_of(self, row: Row) -> str:
        """The ControlNet for this row: its task's, or the only one this stage holds."""
        if len(self.controlnets) == 1:
            return next(iter(self.controlnets))
        try:
            return self.control_of_task[row["task"]]
        except KeyError:
            raise ValueError(f"no ControlNet for task {row.get('task')!r} in this stage") from None

    def control_image(self, row: Row, source_at_size: np.ndarray, control: str) -> np.ndarray:
        """The conditioning picture at the working size."""
        if control == "canny":
            return canny_edges(source_at_size, self.canny_low, self.canny_high)
        depth = read_depth(row)
        if depth is None:
            raise ValueError("no depth map on the row; the depth stage must run first")
        return resize_rgb(render_depth(depth), source_at_size.shape[:2])

    def _prepare(self, row: Row) -> dict:
        source, mask = read_source_and_mask(row)
        size = working_size(*source.shape[:2], self.resolution, self.multiple)
        control = self.control_of(row)
        return {
            "source": source,
            "mask": mask,
            "size": size,
            "control_kind": control,
            "control": self.control_image(row, resize_rgb(source, size), control),
            "seed": row_seed(row["sample_id"], self.base_seed),
            "prompt": edit_prompt(row),
        }

    def _generate(self, items: list[dict], size: tuple[int, int]) -> np.ndarray:
        import torch
        from PIL import Image

        # The pipeline samples the control image's VAE latent from the global generator, which can
        # only be seeded per call: one call per row, seeded by the row, so a row's picture never
        # depends on the rows beside it (at 1024 px SD3.5's transformer gains little from batching).
        devices = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        pictures = []
        for item in items:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(item["seed"])
                result = self.pipes[item["control_kind"]](
                    negative_prompt=[self.negative_prompt],
                    control_image=[Image.fromarray(item["control"])],
                    controlnet_conditioning_scale=self.conditioning_scale,
                    **self.sampling_args([item], size),
                )
            pictures.append(to_uint8(result.images)[0])
        return np.stack(pictures)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        items = [self._prepare(row) for row in rows]
        # one group per ControlNet, in order of first appearance: a row meets the same batch
        # companions of its control as in a stage holding that ControlNet alone
        by_control: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_control.setdefault(item["control_kind"], []).append(i)
        for control, members in by_control.items():
            ref, revision = self.controlnets[control]
            for j, size, target in generate_by_size([items[i] for i in members], self._generate):
                item, row = items[members[j]], rows[members[j]]
                if item["mask"] is not None:
                    target = paste_inside(item["source"], target, item["mask"], self.feather_px)
                write_target(row, target)
                record_stage(
                    row,
                    self.name,
                    model=self.base_ref,
                    controlnet=ref,
                    controlnet_revision=revision,
                    control=control,
                    conditioning_scale=self.conditioning_scale,
                    masked=item["mask"] is not None,
                    **self.generation_record(item, size),
                )
        return rows


def base_sharing_fits(cfg) -> bool:
    """`model_stages.sd3_controlnet.share_base`, and one actor with the base, both ControlNets and
    the section's batch fits one GPU of `gpu.gpu_mem_gb` by the plan's memory model."""
    params = cfg["model_stages"]["sd3_controlnet"]
    if not params.get("share_base", False):
        return False
    loads = (BASE_FAMILY, *CONTROL_FAMILY.values())
    need = models.actor_memory_gb(loads, int(params["batch_size"]), float(cfg["gpu"]["activation_margin"]))[2]
    return need is not None and need <= float(cfg["gpu"]["gpu_mem_gb"])


class _ControlNetFromConfig(SD3ControlNetStage):
    """SD3.5 Large with one ControlNet, built from `model_stages.sd3_controlnet`. Where the base is
    shared (base_sharing_fits) the depth and canny stages get one share_key, from the base and the
    settings, so a run using both has one pool holding both ControlNets; else each its own pool."""

    control_kind = ""

    @classmethod
    def from_config(cls, cfg, tasks):
        stage = super().from_config(cfg, tasks)
        if base_sharing_fits(cfg):
            params = cfg["model_stages"][cls.model.section]
            stage.share_key = ("sd3_controlnet:shared_base", tuple(sorted(params.items())), models.resolve(cfg, BASE_FAMILY))
        return stage

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        base_ref, base_revision = refs[BASE_FAMILY]
        ref, revision = refs[cls.model.family]
        return cls(
            base_ref, ref, cls.control_kind, tasks, base_revision, revision, steps=params["steps"],
            guidance=params["guidance"], conditioning_scale=params["conditioning_scale"],
            resolution=params["resolution"], base_seed=cfg["run"]["seed"],
        )


class SD3DepthControlNetStage(_ControlNetFromConfig):
    model = ModelUse(CONTROL_FAMILY["depth"], "sd3_controlnet", extra_loads=(BASE_FAMILY,))
    control_kind = "depth"
    reads = (*SD3ControlNetStage.reads, "blob.depth", "work.depth_metres_per_unit")  # the depth stage's map


class SD3CannyControlNetStage(_ControlNetFromConfig):
    model = ModelUse(CONTROL_FAMILY["canny"], "sd3_controlnet", extra_loads=(BASE_FAMILY,))
    control_kind = "canny"
