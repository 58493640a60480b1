"""Edge and structure measures shared by gates: whether a redrawn picture still follows the
source's edges (restyling, generated scenes), how much the whole picture changed, and whether
a region's edges stayed where they were (a recolour) or moved (a new object)."""

from __future__ import annotations

import cv2
import numpy as np

ANALYSIS_SIDE = 256  # edges are compared at one coarse scale: brush texture and pixel blocks fade out


def _analysis_grey(rgb: np.ndarray) -> np.ndarray:
    height, width = rgb.shape[:2]
    factor = ANALYSIS_SIDE / max(height, width)
    size = (max(8, round(width * factor)), max(8, round(height * factor)))
    grey = cv2.cvtColor(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(grey, (0, 0), 1.5)


def edge_map(rgb: np.ndarray, density: float = 0.1) -> np.ndarray:
    """Canny edges with thresholds set by the picture's own gradients, so a faint sketch and a
    contrasty photo each give their strongest edges (about `density` of the pixels as candidates)."""
    grey = _analysis_grey(rgb)
    magnitude = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    high = float(np.quantile(magnitude, 1.0 - density))
    if high <= 1e-6:
        return np.zeros(grey.shape, bool)
    return cv2.Canny(grey, 0.5 * high, high, L2gradient=True) > 0


def edge_f1(source: np.ndarray, target: np.ndarray, tolerance_px: int = 2) -> float:
    """F-score of the target's edges against the source's, an edge counting as matched when the
    other map has one within `tolerance_px` (at the analysis scale)."""
    a, b = edge_map(source), edge_map(target)
    if not a.any() or not b.any():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1, 2 * tolerance_px + 1))
    near_a = cv2.dilate(a.astype(np.uint8), kernel) > 0
    near_b = cv2.dilate(b.astype(np.uint8), kernel) > 0
    precision = (b & near_a).sum() / b.sum()
    recall = (a & near_b).sum() / a.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def whole_change(source: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference over the whole picture, 0-255."""
    return float(np.abs(source.astype(np.int16) - target.astype(np.int16)).mean())


def gradient_magnitude(rgb: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3))


def structure_similarity(source: np.ndarray, target: np.ndarray, region: np.ndarray) -> float:
    """Pearson correlation of the two pictures' gradient magnitudes inside `region`: 1 when the
    edges sit in the same places, about 0 when they are unrelated. A flat side has no structure
    to share: 0."""
    region = region.astype(bool)
    if region.sum() < 2:
        return 0.0
    a, b = gradient_magnitude(source)[region], gradient_magnitude(target)[region]
    if a.std() < 1e-3 or b.std() < 1e-3:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
