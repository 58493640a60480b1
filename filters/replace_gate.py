"""Gates for replacing an object: nothing changed outside the region the edit was given, the region
changed, and what is there now is a different thing, not the old object recoloured.

"A different thing" is judged by structure: the correlation of gradient magnitudes between source
and target inside the region. A recolour or a light retouch keeps the object's edges where they
were (correlation near 1); a new object puts its edges elsewhere (near 0)."""

from __future__ import annotations

from filters.edges import structure_similarity
from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import mask_change_results, touched_margin_px


def replace_gate_results(source, target, mask, limits: dict, touched_px: int = 0) -> list[GateResult]:
    margin = touched_px + int(limits["outside_margin_px"])
    return [
        *mask_change_results(source, target, mask, limits, margin),
        GateResult.at_most("structure_similarity", structure_similarity(source, target, mask), limits["max_structure_similarity"]),
    ]


class ReplaceGateStage(GateStage):
    name = "replace_gate"
    reads = ("source_image", "target_image", "mask", "edit", "provenance", "scores?")
    writes = ("scores", "status", "reason")

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return replace_gate_results(source, target, mask, self.limits, touched_margin_px(row))
