"""Gates for global tone edits: the picture changed, and each statistic the edit names moved the
stated way from source to target (warmer: mean b* up; black and white: chroma near 0; dehazed:
dark channel down...). Generated scenes must also keep the source's edges."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from filters.edges import edge_f1, whole_change
from filters.gate_stage import GateStage
from filters.gates import GateResult
from pipeline.core import schema
from pipeline.core.stage import Row


def _lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def mean_lightness(rgb: np.ndarray) -> float:
    return float(_lab(rgb)[..., 0].mean())


def lightness_contrast(rgb: np.ndarray) -> float:
    return float(_lab(rgb)[..., 0].std())


def warmth(rgb: np.ndarray) -> float:
    """Mean b*: yellow-orange positive, blue negative."""
    return float(_lab(rgb)[..., 2].mean())


def chroma(rgb: np.ndarray) -> float:
    lab = _lab(rgb)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


def black_point(rgb: np.ndarray) -> float:
    """The 1st percentile of L*: where the darkest tones sit."""
    return float(np.percentile(_lab(rgb)[..., 0], 1))


def local_contrast(rgb: np.ndarray) -> float:
    """Mean distance of L* from its local mean (sigma 8 px)."""
    light = _lab(rgb)[..., 0]
    return float(np.abs(light - cv2.GaussianBlur(light, (0, 0), 8)).mean())


def dark_channel(rgb: np.ndarray, patch: int = 15) -> float:
    """Mean of the darkest channel over each patch (He et al.): near 0 in clear outdoor photos, high in haze."""
    darkest = rgb.min(axis=2)
    return float(cv2.erode(darkest, np.ones((patch, patch), np.uint8)).mean())


def streak_energy(rgb: np.ndarray) -> float:
    """Thin bright structures a 5 px median removes: rain streaks, speckle."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(np.clip(grey.astype(np.float32) - cv2.medianBlur(grey, 5), 0, None).mean())


def noise_sigma(rgb: np.ndarray) -> float:
    """Immerkaer's fast estimate of Gaussian noise, 0-255 units."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = np.abs(cv2.filter2D(grey, -1, kernel)[1:-1, 1:-1])
    return float(np.sqrt(np.pi / 2) * response.mean() / 6.0)


STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    f.__name__: f
    for f in (mean_lightness, lightness_contrast, warmth, chroma, black_point, local_contrast, dark_channel, streak_energy, noise_sigma)
}


def expectation_result(statistic: str, direction: str, source: np.ndarray, target: np.ndarray, limits: dict) -> GateResult:
    measure = STATISTICS[statistic]
    if direction == "grey":
        return GateResult.at_most(f"{statistic}_grey", measure(target), limits["max_grey_chroma"])
    shift = measure(target) - measure(source)
    signed = shift if direction == "up" else -shift
    return GateResult.at_least(f"{statistic}_{direction}", signed, limits["min_shift"][statistic])


def tone_gate_results(source: np.ndarray, target: np.ndarray, edit: dict, limits: dict) -> list[GateResult]:
    results = [GateResult.at_least("image_change", whole_change(source, target), limits["min_change"])]
    results += [expectation_result(stat, direction, source, target, limits) for stat, direction in edit["expect"]]
    if edit["backend"] != "classical":  # a generated picture must keep the layout
        results.append(GateResult.at_least("edge_f1", edge_f1(source, target, limits["edge_tolerance_px"]), limits["min_edge_f1"]))
    return results


class ToneGateStage(GateStage):
    """Gives rows made by `backends` (None: every backend) their verdict; others pass untouched."""

    name = "tone_gate"
    reads = ("source_image", "target_image", "edit", "scores?")
    writes = ("scores", "status", "reason")
    masked = False

    def __init__(self, tasks: tuple[str, ...], limits: dict, backends: tuple[str, ...] | None = None):
        super().__init__(tasks, limits)
        self.backends = backends

    def process_row(self, row: Row) -> Row:
        if self.backends is not None and schema.loads(row["edit"])["backend"] not in self.backends:
            return row
        return super().process_row(row)

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return tone_gate_results(source, target, edit, self.limits)
