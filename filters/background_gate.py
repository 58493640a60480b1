"""Gates for a new background: the subject (outside the mask) kept nearly as it was, the background
(inside the mask) changed a lot and into something else rather than a recoloured copy, and a
subject that is neither a speck nor the whole picture.

The subject is measured away from its edge: the soft edge of a composite, and a generator's
dilated mask, reach a few pixels into it on purpose."""

from __future__ import annotations

from filters.edges import structure_similarity
from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import dilate, erode, mean_abs_change, touched_margin_px


def background_gate_results(source, target, background, limits: dict, touched_px: int = 0, mask_fallback: bool = False) -> list[GateResult]:
    subject = ~background.astype(bool)
    margin = int(limits["subject_margin_px"])
    core = erode(subject, touched_px + margin)
    behind = background.astype(bool) & ~dilate(subject, margin)
    results = [
        GateResult.at_most("subject_change", mean_abs_change(source, target, core), limits["max_subject_change"]),
        GateResult.at_least("background_change", mean_abs_change(source, target, behind), limits["min_background_change"]),
        GateResult.at_most("background_structure", structure_similarity(source, target, behind), limits["max_background_structure"]),
        GateResult.at_least("subject_fraction", subject.mean(), limits["min_subject_fraction"]),
        GateResult.at_most("subject_fraction_max", subject.mean(), limits["max_subject_fraction"]),
    ]
    if limits["reject_mask_fallback"]:
        # an ellipse stand-in for the subject's outline cuts it out with a patch of old background
        results.append(GateResult.at_most("subject_mask_fallback", float(mask_fallback), 0.0))
    return results


class BackgroundGateStage(GateStage):
    name = "background_gate"
    reads = ("source_image", "target_image", "mask", "edit", "provenance", "scores?")
    writes = ("scores", "status", "reason")

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        # the mask marks the background; the subject is everything outside it
        fallback = edit.get("subject_mask_method") == "ellipse"
        return background_gate_results(source, target, mask, self.limits, touched_margin_px(row), fallback)
