"""An object's shading: its lightness smoothed inside its own mask, so the background never bleeds
in at the outline. The material swap keeps it; the material gate checks it was kept."""

from __future__ import annotations

import cv2
import numpy as np


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIE L* (0-100)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)[..., 0]


def masked_blur(values: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing that averages only pixels inside `mask` (normalised convolution)."""
    weight = mask.astype(np.float32)
    blurred = cv2.GaussianBlur(values.astype(np.float32) * weight, (0, 0), sigma)
    norm = cv2.GaussianBlur(weight, (0, 0), sigma)
    return np.where(norm > 1e-4, blurred / np.maximum(norm, 1e-4), 0.0).astype(np.float32)


def object_scale(mask: np.ndarray) -> float:
    """The diagonal of the mask's bounding box, in pixels."""
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 1.0
    return float(np.hypot(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1))


def smoothed_lightness(rgb: np.ndarray, mask: np.ndarray, sigma_fraction: float) -> np.ndarray:
    sigma = max(1.0, sigma_fraction * object_scale(mask))
    return masked_blur(lightness(rgb), mask, sigma)


def relative_shading(rgb: np.ndarray, mask: np.ndarray, sigma_fraction: float) -> np.ndarray:
    """Smoothed lightness over its mean inside the mask: 1 is the object's average light."""
    smooth = smoothed_lightness(rgb, mask, sigma_fraction)
    mean = float(smooth[mask].mean()) if mask.any() else 1.0
    return smooth / max(mean, 1e-3)


def region_correlation(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of two maps over the mask; 0 where either is flat."""
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    if x.size < 2 or x.std() < 1e-6 or y.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def detail(rgb: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Fine surface detail: lightness minus its local mean."""
    light = lightness(rgb)
    return light - cv2.GaussianBlur(light, (0, 0), sigma)
