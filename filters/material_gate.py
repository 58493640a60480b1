"""Gates for material edits: the rest of the picture untouched, the object changed, its shading
(the shape as light falls on it) kept, and its fine surface detail replaced by another."""

from __future__ import annotations

import numpy as np

from filters.gates import GateResult, record_gates
from filters.mask_change import dilate, inside_change, outside_change
from stages.base import Resources, Row, Stage
from stages.image_io import decode_mask, decode_png
from stages.material_shading import detail, region_correlation, smoothed_lightness


def shading_correlation(source: np.ndarray, target: np.ndarray, mask: np.ndarray, sigma_fraction: float) -> float:
    """How well the target's smoothed lightness follows the source's inside the object; at this
    scale a texture averages out and the light on the shape remains."""
    return region_correlation(smoothed_lightness(source, mask, sigma_fraction), smoothed_lightness(target, mask, sigma_fraction), mask)


def detail_correlation(source: np.ndarray, target: np.ndarray, mask: np.ndarray, rim_px: int = 3) -> float:
    """Near 1 when the old surface detail is still there; a new material should bring its own.
    The outline is left out: source and target share it whatever the surface."""
    interior = ~dilate(~mask.astype(bool), rim_px)
    return region_correlation(detail(source), detail(target), interior if interior.any() else mask)


def material_gate_results(source, target, mask, limits: dict) -> list[GateResult]:
    return [
        GateResult.at_most("outside_change", outside_change(source, target, mask), limits["max_outside_change"]),
        GateResult.at_least("inside_change", inside_change(source, target, mask), limits["min_inside_change"]),
        GateResult.at_least("shading_correlation", shading_correlation(source, target, mask, limits["shading_sigma"]), limits["min_shading_correlation"]),
        GateResult.at_most("detail_correlation", detail_correlation(source, target, mask), limits["max_detail_correlation"]),
    ]


class MaterialGateStage(Stage):
    name = "material_gate"
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_png(row["source_image"]["bytes"])
        target = decode_png(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        return record_gates(row, material_gate_results(source, target, mask, self.limits))
