"""Gates for colour edits: the rest of the image untouched, the region changed, and its hue
now that of the stated colour."""

from __future__ import annotations

from pipeline import schema
from filters.gates import GateResult, record_gates
from filters.hue import hue_distance, region_hue
from filters.mask_change import inside_change, outside_change
from stages.base import Resources, Row, Stage
from stages.image_io import decode_mask, decode_png


def color_gate_results(source, target, mask, target_hue: float, limits: dict) -> list[GateResult]:
    hue, saturation = region_hue(target, mask)
    return [
        GateResult.at_most("outside_change", outside_change(source, target, mask), limits["max_outside_change"]),
        GateResult.at_least("inside_change", inside_change(source, target, mask), limits["min_inside_change"]),
        GateResult.at_most("hue_error_deg", hue_distance(hue, target_hue), limits["max_hue_error_deg"]),
        GateResult.at_least("target_saturation", saturation, limits["min_saturation"]),
    ]


class ColorGateStage(Stage):
    name = "color_gate"
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_png(row["source_image"]["bytes"])
        target = decode_png(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        edit = schema.loads(row["edit"])
        return record_gates(row, color_gate_results(source, target, mask, edit["target_hue"], self.limits))
