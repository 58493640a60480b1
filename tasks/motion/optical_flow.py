"""Dense optical flow between a pair's two frames and what it says: how fast the subject moves,
and whether the background (the camera) moves too.

OpenCV's DIS flow (default) or Farneback run on the CPU with no weights. RAFT (torchvision) would
need its weights downloaded from outside the model hub, as a pickle, so it is not offered here."""

from __future__ import annotations

import cv2
import numpy as np

from filters.mask_change import dilate
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import blob, record_stage
from pipeline.core.stage import Resources, Row, Stage

METHODS = ("dis", "farneback")
# below this share of the frame outside the subject, the whole frame stands for the background
MIN_BACKGROUND_SHARE = 0.05


def compute_flow(source: np.ndarray, target: np.ndarray, method: str = "dis") -> np.ndarray:
    """H x W x 2 float32: where each source pixel went in the target, (dx, dy) in pixels."""
    a = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(target, cv2.COLOR_RGB2GRAY)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 3, 5, 1.1, 0)
    raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(METHODS)}")


def flow_stats(flow: np.ndarray, subject: np.ndarray, union: np.ndarray, margin_px: int) -> dict:
    """Flow inside the subject (its mask in the source frame, where the flow starts) and in the
    background (outside the dilated union of both frames' masks). The background's median
    vector is the camera's motion; the subject's own motion is its mean flow less that."""
    magnitude = np.linalg.norm(flow, axis=2)
    background = ~dilate(union, margin_px)
    if background.mean() < MIN_BACKGROUND_SHARE:
        background = np.ones_like(background)
    camera = np.median(flow[background], axis=0)
    stats = {
        "background_median_px": round(float(np.median(magnitude[background])), 3),
        "background_mean_px": round(float(magnitude[background].mean()), 3),
        "camera_vector_px": [round(float(v), 3) for v in camera],
        "subject_mean_px": 0.0,
        "subject_vector_px": [0.0, 0.0],
    }
    if subject.any():
        own = flow[subject].mean(axis=0) - camera
        stats["subject_mean_px"] = round(float(magnitude[subject].mean()), 3)
        stats["subject_vector_px"] = [round(float(v), 3) for v in own]
    return stats


def agreement(flow_vector: list[float], shift: list[float]) -> float | None:
    """Cosine between the subject's flow and its mask's centroid shift; None if either is ~0."""
    a, b = np.asarray(flow_vector, float), np.asarray(shift, float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-3 or nb < 1e-3:
        return None
    return round(float(a @ b / (na * nb)), 3)


class MotionFlowStage(Stage):
    """Per candidate: flow from source to target; its statistics go into edit["flow"]. Reads the
    candidate's mask and the blob `subject:source` (the subject in the source frame)."""

    name = "optical_flow"
    reads = ("source_image", "target_image", "mask", "blob.subject:source", "edit")
    writes = ("edit", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], method: str, margin_px: int):
        if method not in METHODS:
            raise ValueError(f"unknown flow method {method!r}; choose one of {', '.join(METHODS)}")
        self.tasks = tasks
        self.method, self.margin_px = method, margin_px

    def process_row(self, row: Row) -> Row:
        source = decode_image(row["source_image"]["bytes"])
        target = decode_image(row["target_image"]["bytes"])
        union = decode_mask(row["mask"]["bytes"])
        subject = decode_mask(blob(row, "subject:source"))
        stats = flow_stats(compute_flow(source, target, self.method), subject, union, self.margin_px)
        edit = schema.loads(row["edit"])
        stats["method"] = self.method
        stats["agreement_with_shift"] = agreement(stats["subject_vector_px"], edit["shift_px"])
        edit["flow"] = stats
        row["edit"] = schema.dumps(edit)
        record_stage(row, self.name, method=self.method, margin_px=self.margin_px)
        return row
