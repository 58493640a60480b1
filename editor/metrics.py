"""Distances between an edited image and its target, per row and per task."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np
from skimage.metrics import structural_similarity

PSNR_CAP = 100.0  # dB, for a prediction identical to its target (an identity row on an unchanged image)


def as_float(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def distances(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """L1 (mean absolute difference, 0..1), PSNR (dB) and SSIM of two HxWx3 images."""
    p, t = as_float(pred), as_float(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
    mse = float(np.mean((p - t) ** 2))
    psnr = PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * np.log10(1.0 / mse))
    win = min(7, min(p.shape[:2]) // 2 * 2 - 1)  # SSIM's window must fit the image and be odd
    ssim = structural_similarity(p, t, channel_axis=2, data_range=1.0, win_size=win)
    return {"l1": float(np.mean(np.abs(p - t))), "psnr": float(psnr), "ssim": float(ssim)}


def per_task(rows: Iterable[tuple[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Means per task of each distance, with the row count under `n`."""
    grouped: dict[str, list[dict[str, float]]] = defaultdict(list)
    for task, values in rows:
        grouped[task].append(values)
    return {
        task: {**{k: float(np.mean([v[k] for v in values])) for k in values[0]}, "n": len(values)}
        for task, values in sorted(grouped.items())
    }


def mean_edits(sources: list[np.ndarray], targets: list[np.ndarray], tasks: list[str]) -> dict[str, np.ndarray]:
    """Per task, the training set's average (target - source): the best edit that ignores both
    the instruction and the image. `*` holds the average over every task."""
    diffs: dict[str, list[np.ndarray]] = defaultdict(list)
    for s, t, task in zip(sources, targets, tasks):
        d = as_float(t) - as_float(s)
        diffs[task].append(d)
        diffs["*"].append(d)
    return {task: np.mean(values, axis=0) for task, values in diffs.items()}


def apply_mean_edit(source: np.ndarray, edits: dict[str, np.ndarray], task: str) -> np.ndarray:
    edit = edits.get(task, edits["*"])  # a task with no training rows falls back to all tasks
    return np.clip(as_float(source) + edit, 0.0, 1.0)
