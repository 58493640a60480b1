"""Hue statistics of a region, for colour edits."""

from __future__ import annotations

import cv2
import numpy as np


def region_hue(rgb: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """Saturation-weighted circular mean hue in degrees, and mean saturation (0-1)."""
    hsv = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hue = np.deg2rad(hsv[..., 0][region])
    sat = hsv[..., 1][region]
    if sat.size == 0:
        return 0.0, 0.0
    weight = sat + 1e-6
    angle = np.arctan2((np.sin(hue) * weight).sum(), (np.cos(hue) * weight).sum())
    return float(np.rad2deg(angle) % 360.0), float(sat.mean())


def hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


def rgb_hue(rgb: tuple[int, int, int]) -> float:
    pixel = np.array([[rgb]], np.uint8)
    return region_hue(pixel, np.ones((1, 1), bool))[0]
