"""Growing and shrinking boolean masks, and the ring of surroundings around one, shared by the
generators, the recipes and the gates."""

from __future__ import annotations

import cv2
import numpy as np

# edges that count as texture around a region
CANNY_THRESHOLDS = (60, 150)


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def erode(mask: np.ndarray, pixels: int) -> np.ndarray:
    return ~dilate(~mask.astype(bool), pixels)


def surrounding_ring(mask: np.ndarray, width_px: int, gap_px: int = 0) -> np.ndarray:
    """Pixels within `width_px` of the mask, `gap_px` away from it at the nearest."""
    inner = dilate(mask, gap_px)
    return dilate(mask, gap_px + max(1, width_px)) & ~inner


def ring_width(mask: np.ndarray, fraction: float, least_px: int = 4) -> int:
    """A ring as wide as `fraction` of the region's typical size, so large and small objects are
    compared with a comparable amount of background."""
    return max(least_px, int(round(fraction * np.sqrt(max(1, int(mask.sum()))))))


def edge_density(rgb: np.ndarray, region: np.ndarray) -> float:
    """Share of the region's pixels on a Canny edge."""
    if not region.any():
        return 0.0
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(grey, *CANNY_THRESHOLDS) > 0
    return float(edges[region].mean())
