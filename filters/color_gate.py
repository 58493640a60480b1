"""Gates for colour edits: the rest of the image untouched, the region changed, and its hue
now that of the stated colour."""

from __future__ import annotations

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.hue import hue_distance, region_hue
from filters.mask_change import mask_change_results


def color_gate_results(source, target, mask, target_hue: float, limits: dict) -> list[GateResult]:
    hue, saturation = region_hue(target, mask)
    return [
        *mask_change_results(source, target, mask, limits),
        GateResult.at_most("hue_error_deg", hue_distance(hue, target_hue), limits["max_hue_error_deg"]),
        GateResult.at_least("target_saturation", saturation, limits["min_saturation"]),
    ]


class ColorGateStage(GateStage):
    name = "color_gate"
    reads = ("source_image", "target_image", "mask", "edit", "scores?")
    writes = ("scores", "status", "reason")

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return color_gate_results(source, target, mask, edit["target_hue"], self.limits)
