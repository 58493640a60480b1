"""Growing and shrinking boolean masks, shared by the generators, the recipes and the gates."""

from __future__ import annotations

import cv2
import numpy as np


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    return ~dilate(~mask.astype(bool), pixels)
