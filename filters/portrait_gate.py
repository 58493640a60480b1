"""Gates for portrait retouching: a face is still found where it was, the skin lost fine noise
(Laplacian variance inside the skin mask), the skin changed but not beyond recognition, and
nothing outside the face region moved."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import inside_change, outside_change
from pipeline.core.image_io import decode_mask
from pipeline.core.rows import blob, record_stage
from pipeline.core.stage import Resources
from stages.face_haar import box_iou, detect_faces


def laplacian_variance(rgb: np.ndarray, region: np.ndarray, erode_px: int = 2) -> float:
    """High-frequency energy inside `region` (its rim left out: the mask edge is not skin noise)."""
    if erode_px > 0:
        region = cv2.erode(region.astype(np.uint8), np.ones((2 * erode_px + 1, 2 * erode_px + 1), np.uint8)).astype(bool)
    if region.sum() < 16:
        return 0.0
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)[region].var())


def face_overlap(rgb: np.ndarray, box, min_neighbors: int) -> float:
    """Best overlap (IoU) of a face the cascade finds in `rgb` with `box`; 0 with no face."""
    return max((box_iou(found, box) for found in detect_faces(rgb, 0.04, min_neighbors)), default=0.0)


def portrait_gate_results(source, target, mask, skin, box, limits: dict) -> list[GateResult]:
    before = laplacian_variance(source, skin)
    after = laplacian_variance(target, skin)
    change = inside_change(source, target, skin)
    return [
        GateResult.at_least("face_iou", face_overlap(target, box, limits["face_min_neighbors"]), limits["min_face_iou"]),
        GateResult.at_most("skin_detail_ratio", after / before if before > 0 else 1.0, limits["max_skin_detail_ratio"]),
        GateResult.at_least("inside_change", change, limits["min_inside_change"]),
        GateResult.at_most("inside_change_cap", change, limits["max_inside_change"]),
        GateResult.at_most("outside_change", outside_change(source, target, mask), limits["max_outside_change"]),
    ]


class PortraitGateStage(GateStage):
    name = "portrait_gate"
    reads = ("source_image", "target_image", "mask", "edit", "blob.skin?", "scores?")
    writes = ("scores", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        skin_png = blob(row, "skin")
        skin = decode_mask(skin_png) if skin_png else mask
        record_stage(row, self.name, detector="opencv haar frontalface")
        return portrait_gate_results(source, target, mask, skin, edit["box_xywh"], self.limits)
