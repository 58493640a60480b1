"""Gates for motion pairs: the background stays put (pixels and flow), the subject really moved,
it is not the whole frame, and the two frames belong to one shot (no scene cut)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import outside_change


def frame_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of the two frames' hue-saturation histograms: near 1 within a shot, low
    across a cut."""
    hists = []
    for frame in (a, b):
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [30, 32], [0, 180, 0, 256])
        hists.append(cv2.normalize(hist, hist).flatten())
    return float(cv2.compareHist(hists[0], hists[1], cv2.HISTCMP_CORREL))


def motion_gate_results(source: np.ndarray, target: np.ndarray, mask: np.ndarray, edit: dict, limits: dict) -> list[GateResult]:
    """Motions are measured as fractions of the frame's long side, so one threshold serves every
    working size."""
    long_side = float(max(source.shape[:2]))
    flow = edit["flow"]
    subject = max(math.hypot(*edit["shift_px"]), math.hypot(*flow["subject_vector_px"])) / long_side
    return [
        GateResult.at_most("background_change", outside_change(source, target, mask, limits["margin_px"]), limits["max_background_change"]),
        GateResult.at_most("camera_motion", flow["background_median_px"] / long_side, limits["max_camera_motion"]),
        GateResult.at_least("subject_motion", subject, limits["min_subject_motion"]),
        GateResult.at_most("mask_fraction", float(mask.mean()), limits["max_mask_fraction"]),
        GateResult.at_least("frame_similarity", frame_similarity(source, target), limits["min_frame_similarity"]),
    ]


class MotionGateStage(GateStage):
    name = "motion_gate"
    reads = ("source_image", "target_image", "mask", "edit", "scores?")
    writes = ("scores", "status", "reason")

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        return motion_gate_results(source, target, mask, edit, self.limits)
