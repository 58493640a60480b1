"""Builds each model family's stage from the profile: where its weights come from (registry,
tiny twin or override) and how it is sized (model_stages.* in the config)."""

from __future__ import annotations

from typing import Any

from pipeline.core import models
from pipeline.core.stage import Resources, Stage

# which config block sizes which family's stage
STAGE_CONFIG = {
    "florence2": "florence2",
    "sam2": "sam2",
    "siglip": "siglip",
    "qwen2_5_vl": "qwen2_5_vl",
    "zoedepth": "zoedepth",
    "flux_fill": "flux_fill",
    "controlnet_depth": "sd3_controlnet",
    "controlnet_canny": "sd3_controlnet",
    "dinov2": "dinov2",
    "clip": "clip",
}
# the families each stage loads: the ControlNet stages load the SD3.5 base as well
LOADS = {family: [family] for family in STAGE_CONFIG}
LOADS["controlnet_depth"] = ["sd3_5", "controlnet_depth"]
LOADS["controlnet_canny"] = ["sd3_5", "controlnet_canny"]


def attach(stage: Stage, family: str, cfg: dict[str, Any], variant: str = "") -> Stage:
    """Size a stage that loads `family` from the profile, name what it loads (tiny twins are
    built first), and key it so two tasks asking for the same model, settings and use share one
    actor pool. `variant` tells apart stages that load one model for different jobs."""
    params = cfg["model_stages"][STAGE_CONFIG[family]]
    stage.families = tuple(LOADS[family])
    stage.share_key = (family + (f":{variant}" if variant else ""), tuple(sorted(params.items())), tuple(models.resolve(cfg, f) for f in LOADS[family]))
    stage.resources = Resources(
        num_cpus=float(params["num_cpus"]),
        num_gpus=float(params["num_gpus"]),
        batch_size=int(params["batch_size"]),
        concurrency=int(params["concurrency"]),
    )
    return stage


def make_stage(family: str, cfg: dict[str, Any], tasks: tuple[str, ...] | None) -> Stage:
    """The stage that runs `family`, loading what the profile says."""
    params = cfg["model_stages"][STAGE_CONFIG[family]]
    ref, revision = models.resolve(cfg, family)
    if family == "florence2":
        from stages.models.florence2 import Florence2GroundingStage

        stage = Florence2GroundingStage(ref, tasks, revision, max_new_tokens=params["max_new_tokens"], num_beams=params["num_beams"])
    elif family == "sam2":
        from stages.models.sam2 import Sam2MaskStage

        stage = Sam2MaskStage(
            ref, tasks, revision, min_component=params["min_component"], dilate_px=params["dilate_px"],
            min_box_fraction=params["min_box_fraction"],
        )
    elif family == "siglip":
        from stages.models.siglip import SiglipTagStage

        stage = SiglipTagStage(ref, threshold=params["threshold"], max_tags=params["max_tags"], revision=revision, tasks=tasks)
    elif family == "qwen2_5_vl":
        from stages.models.qwen2_5_vl import QwenChooseEditStage

        stage = QwenChooseEditStage(ref, revision, max_new_tokens=params["max_new_tokens"], temperature=params["temperature"], tasks=tasks)
    elif family == "zoedepth":
        from stages.models.zoedepth import ZoeDepthStage

        stage = ZoeDepthStage(ref, tasks, revision)
    elif family == "flux_fill":
        from stages.models.flux_fill import FluxFillStage

        stage = FluxFillStage(
            ref, tasks, revision, steps=params["steps"], guidance=params["guidance"], resolution=params["resolution"],
            base_seed=cfg["run"]["seed"],
        )
    elif family in ("controlnet_depth", "controlnet_canny"):
        from stages.models.sd3_controlnet import SD3ControlNetStage

        base_ref, base_revision = models.resolve(cfg, "sd3_5")
        stage = SD3ControlNetStage(
            base_ref, ref, family.split("_")[1], tasks, base_revision, revision, steps=params["steps"],
            guidance=params["guidance"], conditioning_scale=params["conditioning_scale"],
            resolution=params["resolution"], base_seed=cfg["run"]["seed"],
        )
    elif family in ("dinov2", "clip"):
        from filters.clip_similarity import ClipSimilarityStage
        from filters.dino_similarity import DinoSimilarityStage

        gates = cfg["common_gates"]
        stage_class = DinoSimilarityStage if family == "dinov2" else ClipSimilarityStage
        stage = stage_class(ref, tasks, limits=gates["model"], per_task=gates["per_task"], revision=revision)
    else:
        raise KeyError(f"no stage for model family {family!r}")
    return attach(stage, family, cfg)
