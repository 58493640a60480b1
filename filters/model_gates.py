"""The model-based gates the seed's profiles add after the common gates (DINOv2 and CLIP
similarity), by registry family."""

from __future__ import annotations

from typing import Any

from filters.clip_similarity import ClipSimilarityStage
from filters.common_gates import ModelGateStage
from filters.dino_similarity import DinoSimilarityStage

MODEL_GATES: dict[str, type[ModelGateStage]] = {cls.model.family: cls for cls in (DinoSimilarityStage, ClipSimilarityStage)}


def model_gate_stages(cfg: dict[str, Any]) -> list[ModelGateStage]:
    """None on the cpu profile (no weights); DINOv2 then CLIP on the seed's profiles."""
    if cfg["profile"] == "cpu":
        return []
    return [MODEL_GATES[family].from_config(cfg, None) for family in ("dinov2", "clip")]
