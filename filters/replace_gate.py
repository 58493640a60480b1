"""Gates for replacing an object: nothing changed outside the region the edit was given, the region
changed, and what is there now is a different thing, not the old object recoloured.

"A different thing" is judged by structure: the correlation of gradient magnitudes between source
and target inside the region. A recolour or a light retouch keeps the object's edges where they
were (correlation near 1); a new object puts its edges elsewhere (near 0)."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gates import GateResult, record_gates
from filters.mask_change import inside_change, outside_change
from filters.remove_gate import touched_margin_px
from stages.base import Resources, Row, Stage
from stages.image_io import decode_mask, decode_png


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def structure_similarity(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Pearson correlation of the two pictures' gradient magnitudes inside `region`: 1 when the
    edges sit in the same places, about 0 when they are unrelated. A flat side has no structure
    to share: 0."""
    region = region.astype(bool)
    if region.sum() < 2:
        return 0.0
    a, b = gradient_magnitude(source)[region], gradient_magnitude(target)[region]
    if a.std() < 1e-3 or b.std() < 1e-3:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def replace_gate_results(source, target, mask, limits: dict, touched_px: int = 0) -> list[GateResult]:
    margin = touched_px + int(limits["outside_margin_px"])
    return [
        GateResult.at_most("outside_change", outside_change(source, target, mask, margin), limits["max_outside_change"]),
        GateResult.at_least("inside_change", inside_change(source, target, mask), limits["min_inside_change"]),
        GateResult.at_most("structure_similarity", structure_similarity(source, target, mask), limits["max_structure_similarity"]),
    ]


class ReplaceGateStage(Stage):
    name = "replace_gate"
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_png(row["source_image"]["bytes"])
        target = decode_png(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        return record_gates(row, replace_gate_results(source, target, mask, self.limits, touched_margin_px(row)))
