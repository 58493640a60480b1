"""The model stages a recipe asks for by registry family: one table, family -> class. Each class
declares what it loads and which `model_stages.*` section sizes it (`ModelStage.model`), and
builds itself from the config; this module only looks it up."""

from __future__ import annotations

from typing import Any

from pipeline.core.stage import ModelStage
from stages.models.florence2 import Florence2GroundingStage
from stages.models.flux_fill import FluxFillStage
from stages.models.qwen2_5_vl import QwenChooseEditStage
from stages.models.sam2 import Sam2MaskStage
from stages.models.sd3_controlnet import (
    SD3CannyControlNetStage,
    SD3DepthControlNetStage,
)
from stages.models.siglip import SiglipTagStage
from stages.models.zoedepth import ZoeDepthStage

MODEL_STAGES: dict[str, type[ModelStage]] = {
    cls.model.family: cls
    for cls in (
        Florence2GroundingStage,
        Sam2MaskStage,
        SiglipTagStage,
        QwenChooseEditStage,
        ZoeDepthStage,
        FluxFillStage,
        SD3DepthControlNetStage,
        SD3CannyControlNetStage,
    )
}


def make_stage(family: str, cfg: dict[str, Any], tasks: tuple[str, ...] | None) -> ModelStage:
    """The stage that runs `family` for `tasks`, loading what the profile says."""
    try:
        stage_class = MODEL_STAGES[family]
    except KeyError:
        raise KeyError(f"no stage for model family {family!r}; have: {', '.join(MODEL_STAGES)}") from None
    return stage_class.from_config(cfg, tasks)
