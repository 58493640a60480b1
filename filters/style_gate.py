"""Gates for whole-picture restyling: the drawing still follows the source's edges, and the
picture did change. The edge rule (filters.edges) also judges other whole-picture edits (tone's
generated scenes)."""

from __future__ import annotations

import numpy as np

from filters.edges import edge_f1, whole_change
from filters.gate_stage import GateStage
from filters.gates import GateResult


def style_gate_results(source: np.ndarray, target: np.ndarray, limits: dict) -> list[GateResult]:
    return [
        GateResult.at_least("edge_f1", edge_f1(source, target, limits["edge_tolerance_px"]), limits["min_edge_f1"]),
        GateResult.at_least("image_change", whole_change(source, target), limits["min_change"]),
    ]


class StyleGateStage(GateStage):
    name = "style_gate"
    reads = ("source_image", "target_image", "edit", "scores?")
    writes = ("scores", "status", "reason")
    masked = False

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return style_gate_results(source, target, self.limits)
