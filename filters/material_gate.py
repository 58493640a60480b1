"""Gates for material edits: the rest of the picture untouched, the object changed, its shading
(the shape as light falls on it) kept, and its fine surface detail replaced by another."""

from __future__ import annotations

import numpy as np

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import erode, mask_change_results
from stages.material_shading import detail, region_correlation, smoothed_lightness


def shading_correlation(source: np.ndarray, target: np.ndarray, mask: np.ndarray, sigma_fraction: float) -> float:
    """How well the target's smoothed lightness follows the source's inside the object; at this
    scale a texture averages out and the light on the shape remains."""
    return region_correlation(smoothed_lightness(source, mask, sigma_fraction), smoothed_lightness(target, mask, sigma_fraction), mask)


def detail_correlation(source: np.ndarray, target: np.ndarray, mask: np.ndarray, rim_px: int = 3) -> float:
    """Near 1 when the old surface detail is still there; a new material should bring its own.
    The outline is left out: source and target share it whatever the surface."""
    interior = erode(mask, rim_px)
    return region_correlation(detail(source), detail(target), interior if interior.any() else mask)


def material_gate_results(source, target, mask, limits: dict) -> list[GateResult]:
    return [
        *mask_change_results(source, target, mask, limits),
        GateResult.at_least("shading_correlation", shading_correlation(source, target, mask, limits["shading_sigma"]), limits["min_shading_correlation"]),
        GateResult.at_most("detail_correlation", detail_correlation(source, target, mask), limits["max_detail_correlation"]),
    ]


class MaterialGateStage(GateStage):
    name = "material_gate"
    reads = ("source_image", "target_image", "mask", "edit", "scores?")
    writes = ("scores", "status", "reason")

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return material_gate_results(source, target, mask, self.limits)
