"""Gates for portrait retouching: a face is still found where it was, the skin lost fine noise
(Laplacian variance inside the skin mask), the skin changed but not beyond recognition, and
nothing outside the face region moved."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gates import GateResult, record_gates
from filters.mask_change import inside_change, outside_change
from pipeline import schema
from stages.base import Resources, Row, Stage
from stages.face_haar import box_iou, detect_faces
from stages.image_io import decode_mask, decode_png
from stages.rows import blob, record_stage


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


class PortraitGateStage(Stage):
    name = "portrait_gate"
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, tasks: tuple[str, ...], limits: dict):
        self.tasks = tasks
        self.limits = dict(limits)

    def process_row(self, row: Row) -> Row:
        source = decode_png(row["source_image"]["bytes"])
        target = decode_png(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        skin_png = blob(row, "skin")
        skin = decode_mask(skin_png) if skin_png else mask
        edit = schema.loads(row["edit"])
        record_stage(row, self.name, detector="opencv haar frontalface")
        return record_gates(row, portrait_gate_results(source, target, mask, skin, edit["box_xywh"], self.limits))
