"""Masks from boxes with OpenCV's GrabCut: the cpu profile's stand-in for SAM-2."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_fallback, record_stage, set_blob, work
from pipeline.core.stage import Resources, Row, Stage


def clean_mask(mask: np.ndarray, min_component: float = 0.1) -> np.ndarray:
    """Drop specks (components under `min_component` of the largest) and fill holes."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= min_component * areas.max()) + 1
    kept = np.isin(labels, keep).astype(np.uint8)
    # holes: background regions not connected to the border
    padded = np.pad(kept, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return (kept.astype(bool) | holes)


def ellipse_mask(box: list[float], size: tuple[int, int]) -> np.ndarray:
    width, height = size
    x, y, w, h = box
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (int(x + w / 2), int(y + h / 2)), (max(1, int(w / 2)), max(1, int(h / 2))), 0, 0, 360, 1, -1)
    return mask.astype(bool)


def grabcut_from_box(rgb: np.ndarray, box: list[float], iterations: int, margin: float, seed: int) -> np.ndarray:
    """GrabCut on a crop around the box: faster than the whole image, same result inside."""
    height, width = rgb.shape[:2]
    x, y, w, h = box
    pad_x, pad_y = max(8, int(0.25 * w)), max(8, int(0.25 * h))
    cx0, cy0 = max(0, int(x) - pad_x), max(0, int(y) - pad_y)
    cx1, cy1 = min(width, int(np.ceil(x + w)) + pad_x), min(height, int(np.ceil(y + h)) + pad_y)
    crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1, ::-1])
    inset_x, inset_y = int(margin * w), int(margin * h)
    rect = (
        max(1, int(x) - cx0 + inset_x),
        max(1, int(y) - cy0 + inset_y),
        max(2, int(w) - 2 * inset_x),
        max(2, int(h) - 2 * inset_y),
    )
    rect = (rect[0], rect[1], min(rect[2], crop.shape[1] - rect[0] - 1), min(rect[3], crop.shape[0] - rect[1] - 1))
    cv2.setRNGSeed(seed)
    labels = np.zeros(crop.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(crop, labels, rect, bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    fg = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    full = np.zeros((height, width), bool)
    full[cy0:cy1, cx0:cx1] = fg
    return full


class GrabCutMaskStage(Stage):
    """One mask per selected object, kept as `mask:<i>` scratch on the input's row."""

    name = "grabcut_mask"
    reads = ("source_image", "work.selected")
    writes = ("blob.mask:*", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], iterations: int, box_margin: float, min_fraction: float, max_fraction: float):
        self.tasks = tasks
        self.iterations = iterations
        self.box_margin = box_margin
        self.min_fraction = min_fraction
        self.max_fraction = max_fraction

    def process_row(self, row: Row) -> Row:
        rgb = decode_image(row["source_image"]["bytes"])
        size = (rgb.shape[1], rgb.shape[0])
        methods = []
        for i, obj in enumerate(work(row)["selected"]):
            box = obj["bbox"]
            mask = clean_mask(grabcut_from_box(rgb, box, self.iterations, self.box_margin, seed=i))
            box_area = max(1.0, box[2] * box[3])
            fraction = mask.sum() / box_area
            method = "grabcut"
            if not self.min_fraction <= fraction <= self.max_fraction:
                mask = ellipse_mask(box, size)
                method = "ellipse"
                record_fallback(row, self.name, f"object {i} ({obj['label']}): GrabCut kept {fraction:.0%} of the box; used the inscribed ellipse")
            methods.append(method)
            set_blob(row, f"mask:{i}", encode_image(mask.astype(np.uint8) * 255))
        record_stage(row, self.name, backend="opencv.grabCut", iterations=self.iterations, methods=methods)
        return row
