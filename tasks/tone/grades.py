"""Global colour grades and exposure/contrast adjustments. Each maps float RGB in 0-1 to the
same, with a random generator for the grades that add grain."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Grade = Callable[[np.ndarray, np.random.Generator], np.ndarray]

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ LUMA


def saturate(rgb: np.ndarray, amount: float) -> np.ndarray:
    """amount 1 keeps the colours, 0 greys them, above 1 boosts them."""
    grey = luminance(rgb)[..., None]
    return grey + (rgb - grey) * amount


def s_curve(x: np.ndarray, strength: float) -> np.ndarray:
    """A sigmoid through (0, 0), (0.5, 0.5), (1, 1); larger strength, more contrast."""
    raw = lambda v: 1.0 / (1.0 + np.exp(-strength * (v - 0.5)))  # noqa: E731
    low, high = raw(0.0), raw(1.0)
    return (raw(x) - low) / (high - low)


def warm(rgb, rng):
    return rgb * np.array([1.08, 1.02, 0.84], np.float32)


def cool(rgb, rng):
    return rgb * np.array([0.86, 0.98, 1.1], np.float32)


def black_and_white(rgb, rng):
    grey = s_curve(np.clip(luminance(rgb), 0, 1), 4.0)
    return np.repeat(grey[..., None], 3, axis=2)


def film(rgb, rng):
    """Lifted blacks, softened whites, muted colour, teal shadows, warm highlights, grain."""
    out = 0.08 + 0.86 * s_curve(np.clip(rgb, 0, 1), 5.0)
    out = saturate(out, 0.75)
    light = luminance(out)[..., None]
    out = out + (1.0 - light) * np.array([-0.02, 0.01, 0.03], np.float32) + light * np.array([0.03, 0.01, -0.03], np.float32)
    grain = rng.normal(0.0, 0.012, out.shape[:2]).astype(np.float32)[..., None]
    return out + grain


def vintage(rgb, rng):
    """Part sepia, faded, with a soft vignette."""
    sepia = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    out = 0.6 * rgb + 0.4 * np.clip(rgb @ sepia.T, 0, 1)
    out = 0.12 + 0.72 * out
    height, width = rgb.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2)) / np.sqrt(2)
    return out * (1.0 - 0.2 * radius**2)[..., None]


def hdr(rgb, rng):
    """Local contrast: CLAHE on lightness, then OpenCV's detail enhancement, a little more colour."""
    lab = cv2.cvtColor(np.clip(rgb, 0, 1).astype(np.float32), cv2.COLOR_RGB2Lab)
    light = np.clip(lab[..., 0] * 2.55, 0, 255).astype(np.uint8)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(light).astype(np.float32) / 2.55
    out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    bgr = np.clip(out[..., ::-1] * 255, 0, 255).astype(np.uint8)
    enhanced = cv2.detailEnhance(bgr, sigma_s=10, sigma_r=0.15)[..., ::-1].astype(np.float32) / 255.0
    return saturate(0.5 * out + 0.5 * enhanced, 1.1)  # half strength: the full filter looks overcooked


def brighter(rgb, rng):
    return np.clip(rgb, 0, 1) ** 0.65


def darker(rgb, rng):
    return np.clip(rgb, 0, 1) ** 1.6


def more_contrast(rgb, rng):
    return s_curve(np.clip(rgb, 0, 1), 7.0)


def less_contrast(rgb, rng):
    mean = luminance(rgb).mean()
    return mean + (rgb - mean) * 0.6


GRADES: dict[str, Grade] = {
    "warm": warm,
    "cool": cool,
    "black_and_white": black_and_white,
    "film": film,
    "vintage": vintage,
    "hdr": hdr,
    "brighter": brighter,
    "darker": darker,
    "more_contrast": more_contrast,
    "less_contrast": less_contrast,
}
