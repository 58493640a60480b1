"""How much the edit changed the image inside and outside its mask."""

from __future__ import annotations

import cv2
import numpy as np


def mean_abs_change(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    if not region.any():
        return 0.0
    diff = np.abs(source.astype(np.int16) - target.astype(np.int16)).mean(axis=2)
    return float(diff[region].mean())


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def outside_change(source: np.ndarray, target: np.ndarray, mask: np.ndarray, margin_px: int = 2) -> float:
    return mean_abs_change(source, target, ~dilate(mask, margin_px))


def inside_change(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    return mean_abs_change(source, target, mask.astype(bool))
