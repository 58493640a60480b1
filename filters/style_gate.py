"""Gates for whole-picture restyling: the drawing still follows the source's edges, and the
picture did change. The edge rule is shared with other whole-picture edits (tone's scenes)."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gates import GateResult, record_gates
from stages.base import Resources, Row, Stage
from stages.image_io import decode_png

ANALYSIS_SIDE = 256  # edges are compared at one coarse scale: brush texture and pixel blocks fade out


def _analysis_grey(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    factor = ANALYSIS_SIDE / max(height, width)
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    grey = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(grey, (0, 0), 1.5)


def edge_map(rgb: np.ndarray, density: float = 0.1) -> np.ndarray:
    """Canny edges with thresholds set by the picture's own gradients, so a faint sketch and a
    contrasty photo each give their strongest edges (about `density` of the pixels as candidates)."""
    grey = _analysis_grey(rgb)
    magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    high = float(np.quantile(magnitude, 1.0 - density))
    if high <= 1e-6:
        return np.zeros(grey.shape, bool)
    return cv2.Canny(grey, 0.5 * high, high, L2gradient=True) > 0


def edge_f1(source: np.ndarray, target: np.ndarray, tolerance_px: int = 2) -> float:
    """F-score of the target's edges against the source's, an edge counting as matched when the
    other map has one within `tolerance_px` (at the analysis scale)."""
    a, b = edge_map(source), edge_map(target)
    if not a.any() or not b.any():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    near_a = cv2.dilate(a.astype(np.uint8), kernel) > 0
    near_b = cv2.dilate(b.astype(np.uint8), kernel) > 0
    precision = (b & near_a).sum() / b.sum()
    recall = (a & near_b).sum() / a.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def whole_change(source: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference over the whole picture, 0-255."""
    return float(np.abs(source.astype(np.int16) - target.astype(np.int16)).mean())


def style_gate_results(source: np.ndarray, target: np.ndarray, limits: dict) -> list[GateResult]:
    return [
        GateResult.at_least("edge_f1", edge_f1(source, target, limits["edge_tolerance_px"]), limits["min_edge_f1"]),
        GateResult.at_least("image_change", whole_change(source, target), limits["min_change"]),
    ]


class StyleGateStage(Stage):
    name = "style_gate"
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_png(row["source_image"]["bytes"])
        target = decode_png(row["target_image"]["bytes"])
        return record_gates(row, style_gate_results(source, target, self.limits))
