"""Foreground masks of what moves in a clip: each sampled frame against a median background
(or OpenCV's MOG2 mixture model), then cleaned of specks and holes."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import blob, mark, record_stage, set_blob, update_work, work
from pipeline.core.stage import Resources, Row, Stage

METHODS = ("median", "mog2")


def median_background(frames: list[np.ndarray]) -> np.ndarray:
    """A subject that keeps moving covers any one pixel in few frames, so the per-pixel median
    is the scene without it."""
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


def difference_masks(frames: list[np.ndarray], threshold: float) -> list[np.ndarray]:
    background = median_background(frames).astype(np.int16)
    # the largest channel difference: a blue ball on green grass differs little in grey
    return [np.abs(f.astype(np.int16) - background).max(axis=2) > threshold for f in frames]


def mog2_masks(frames: list[np.ndarray], threshold: float) -> list[np.ndarray]:
    """MOG2 learns the background from every sampled frame, then labels each frame with learning
    off. Its shadow label counts as foreground: a moving subject's shadow moves with it."""
    model = cv2.createBackgroundSubtractorMOG2(history=len(frames), varThreshold=threshold, detectShadows=True)
    for frame in frames:
        model.apply(frame, learningRate=-1)
    return [model.apply(frame, learningRate=0) > 0 for frame in frames]


def clean_mask(mask: np.ndarray, open_px: int, close_px: int, min_area_fraction: float) -> np.ndarray:
    """Opening drops compression specks, closing joins a subject's pieces, holes are filled, and
    components smaller than `min_area_fraction` of the frame go."""
    out = mask.astype(np.uint8)
    if open_px > 0:
        out = cv2.morphologyEx(out, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * open_px + 1,) * 2))
    if close_px > 0:
        out = cv2.morphologyEx(out, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close_px + 1,) * 2))
    contours, _ = cv2.findContours(out, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = min_area_fraction * mask.size
    filled = np.zeros_like(out)
    kept = [c for c in contours if cv2.contourArea(c) >= min_area]
    if kept:
        cv2.drawContours(filled, kept, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def mask_summary(mask: np.ndarray) -> dict:
    """Area fraction, centroid (x, y) and box (x, y, w, h) of a mask, in pixels."""
    area = int(mask.sum())
    if area == 0:
        return {"area": 0.0, "centroid": None, "box_xywh": None}
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return {"area": round(area / mask.size, 5), "centroid": [round(float(xs.mean()), 2), round(float(ys.mean()), 2)], "box_xywh": box}


def foreground_masks(frames: list[np.ndarray], params: dict) -> list[np.ndarray]:
    method = params["method"]
    if method == "median":
        raw = difference_masks(frames, params["diff_threshold"])
    elif method == "mog2":
        raw = mog2_masks(frames, params["mog2_var_threshold"])
    else:
        raise ValueError(f"unknown foreground method {method!r}; choose one of {', '.join(METHODS)}")
    return [clean_mask(m, params["open_px"], params["close_px"], params["min_area_fraction"]) for m in raw]


class ForegroundMaskStage(Stage):
    """Reads blobs `frame:<k>`, writes blobs `fg:<k>` and each frame's mask summary into
    work["motion_frames"]. A clip where nothing moves is skipped."""

    name = "motion_foreground"
    reads = ("work.motion_frames", "blob.frame:*")
    writes = ("blob.fg:*", "work.motion_frames", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=2)

    def __init__(self, tasks: tuple[str, ...], params: dict):
        if params["method"] not in METHODS:
            raise ValueError(f"unknown foreground method {params['method']!r}; choose one of {', '.join(METHODS)}")
        self.tasks = tasks
        self.params = dict(params)

    def process_row(self, row: Row) -> Row:
        sampled = work(row)["motion_frames"]
        frames = [decode_image(blob(row, f"frame:{k}")) for k in range(len(sampled))]
        masks = foreground_masks(frames, self.params)
        for k, mask in enumerate(masks):
            sampled[k].update(mask_summary(mask))
            set_blob(row, f"fg:{k}", encode_image(mask.astype(np.uint8) * 255))
        update_work(row, motion_frames=sampled)
        record_stage(row, self.name, **self.params)
        if not any(m.any() for m in masks):
            return mark(row, schema.SKIPPED, f"{self.name}: nothing moves: no foreground in any of {len(masks)} sampled frames")
        return row
