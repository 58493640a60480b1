"""How much the edit changed the image inside and outside its mask."""

from __future__ import annotations

import numpy as np

from filters.gates import GateResult
from pipeline.core.mask_ops import dilate, erode  # noqa: F401 - gates use them from here
from pipeline.core.rows import provenance
from pipeline.core.stage import Row


def mean_abs_change(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    if not region.any():
        return 0.0
    diff = np.abs(source.astype(np.int16) - target.astype(np.int16)).mean(axis=2)
    return float(diff[region].mean())


def outside_change(source: np.ndarray, target: np.ndarray, mask: np.ndarray, margin_px: int = 2) -> float:
    return mean_abs_change(source, target, ~dilate(mask, margin_px))


def inside_change(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    return mean_abs_change(source, target, mask.astype(bool))


def mask_change_results(source: np.ndarray, target: np.ndarray, mask: np.ndarray, limits: dict, margin_px: int = 2) -> list[GateResult]:
    """What every local edit must show: the image outside the mask (`margin_px` away from it)
    nearly untouched, and the masked region really changed."""
    return [
        GateResult.at_most("outside_change", outside_change(source, target, mask, margin_px), limits["max_outside_change"]),
        GateResult.at_least("inside_change", inside_change(source, target, mask), limits["min_inside_change"]),
    ]


def touched_margin_px(row: Row) -> int:
    """How far beyond the row's mask the generator was allowed to write: the largest mask
    dilation a stage recorded (Flux-Fill grows the mask it is given)."""
    stages = provenance(row).get("stages", {})
    return max([int(info.get("mask_dilate_px", 0)) for info in stages.values()] or [0])
