"""Gates for removing (and, read backwards, adding) an object: nothing changed outside the region
the inpainter was given, the region changed, and what fills it now looks like the surroundings
rather than like the object that was there.

"Looks like" is judged by two cheap statistics, each compared against the object (the region in
the picture that has it) and the ring of background just outside the region: a colour histogram
and the density of edges. Both are blind to what lies outside the mask, so an object the mask only
partly covered can still pass; they catch the inpainter leaving the object in place, or filling
the hole with something unlike its surroundings (a smooth smear inside a textured ring)."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import dilate, mask_change_results, touched_margin_px
from pipeline.core.mask_ops import edge_density, ring_width, surrounding_ring

HISTOGRAM_BINS = (8, 8, 8)  # Lab: coarse enough that texture noise does not dominate


def colour_histogram(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    hist = cv2.calcHist([lab], [0, 1, 2], region.astype(np.uint8), list(HISTOGRAM_BINS), [0, 256, 0, 256, 0, 256])
    return cv2.normalize(hist, None, alpha=1.0, norm_type=cv2.NORM_L1)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance: 0 for the same distribution, 1 for disjoint ones."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def colour_toward_ring(with_object: np.ndarray, without_object: np.ndarray, region: np.ndarray, ring: np.ndarray) -> float:
    """How the filled region's colours split between the ring and the object: 1 when they are the
    ring's, 0 when they are still the object's, 0.5 when it cannot tell (object and ring alike)."""
    filled = colour_histogram(without_object, region)
    to_ring = histogram_distance(filled, colour_histogram(with_object, ring))
    to_object = histogram_distance(filled, colour_histogram(with_object, region))
    if to_ring + to_object < 1e-6:
        return 0.5
    return to_object / (to_ring + to_object)


def edge_density_excess(with_object: np.ndarray, without_object: np.ndarray, region: np.ndarray, ring: np.ndarray) -> float:
    """How much further the filled region's edge density is from the ring's than the object's
    was. At most 0 means the fill is at least as close to its surroundings in texture as the
    object was; a smooth fill inside a textured ring scores high."""
    ring_edges = edge_density(with_object, ring)
    filled = abs(edge_density(without_object, region) - ring_edges)
    before = abs(edge_density(with_object, region) - ring_edges)
    return filled - before


def removal_gate_results(with_object: np.ndarray, without_object: np.ndarray, mask: np.ndarray, limits: dict, touched_px: int = 0) -> list[GateResult]:
    """`with_object` is the picture that has the object, `without_object` the one that lacks it:
    source and target for a removal, the other way round for an addition."""
    margin = touched_px + int(limits["outside_margin_px"])
    region = dilate(mask, touched_px)
    ring = surrounding_ring(region, ring_width(region, limits["ring_fraction"]), int(limits["outside_margin_px"]))
    return [
        *mask_change_results(with_object, without_object, mask, limits, margin),
        GateResult.at_least("colour_toward_ring", colour_toward_ring(with_object, without_object, region, ring), limits["min_colour_toward_ring"]),
        GateResult.at_most("edge_density_excess", edge_density_excess(with_object, without_object, region, ring), limits["max_edge_density_excess"]),
    ]


class RemoveGateStage(GateStage):
    """Verdict for a removal: the source has the object, the target does not."""

    name = "remove_gate"
    reads = ("source_image", "target_image", "mask", "edit", "provenance", "scores?")
    writes = ("scores", "status", "reason")
    object_in_source = True

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        with_object, without_object = (source, target) if self.object_in_source else (target, source)
        return removal_gate_results(with_object, without_object, mask, self.limits, touched_margin_px(row))


class AddGateStage(RemoveGateStage):
    """Verdict for an addition made by reversing a removal: the target has the object, the
    source does not. The same checks, read on the swapped pair."""

    name = "add_gate"
    object_in_source = False
