"""Non-photorealistic renderings with OpenCV: each takes an RGB uint8 picture and returns one of
the same size in a named style. The drawing follows the source's edges by construction."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[..., ::-1])


def _scale(rgb: np.ndarray) -> float:
    """Filter sizes are tuned for a 512-pixel long side and scaled with the picture."""
    return max(rgb.shape[:2]) / 512.0


def watercolor(rgb: np.ndarray) -> np.ndarray:
    """Flat washes (mean shift), lightened as thin paint is, pigment pooling at the washes' borders,
    and paper grain. (cv2.stylization draws black outlines, which reads as a cartoon.)"""
    washes = cv2.pyrMeanShiftFiltering(_bgr(rgb), sp=int(round(10 * _scale(rgb))) or 1, sr=28)
    washes = cv2.GaussianBlur(washes, (0, 0), 1.2 * _scale(rgb)).astype(np.float32)
    light = 0.82 * washes + 0.18 * 255.0
    grey = cv2.cvtColor(washes.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
    borders = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    pooled = light * (1.0 - 0.35 * np.clip(borders / 120.0, 0, 1))[..., None]
    paper = 1.0 + 0.04 * cv2.GaussianBlur(np.random.default_rng(0).normal(0, 1, grey.shape).astype(np.float32), (0, 0), 1.5)
    return _rgb(np.clip(pooled * paper[..., None], 0, 255).astype(np.uint8))


def dodge_sketch(rgb: np.ndarray) -> np.ndarray:
    """Grey divided by its blurred negative (a colour dodge): flat areas go white, edges stay
    as soft graphite strokes. Float 0-1."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    blurred_negative = cv2.GaussianBlur(255.0 - grey, (0, 0), 6.0 * _scale(rgb))
    sketch = np.clip(grey / np.maximum(255.0 - blurred_negative, 1.0), 0.0, 1.0)
    return sketch**1.6  # darker strokes read as pencil rather than as a faint ghost


def pencil_sketch(rgb: np.ndarray) -> np.ndarray:
    ink = np.round(dodge_sketch(rgb) * 255.0).astype(np.uint8)
    return np.repeat(ink[..., None], 3, axis=2)


def colored_pencil(rgb: np.ndarray) -> np.ndarray:
    """Pencil strokes over light washes of the source's colours."""
    wash = 0.55 * rgb.astype(np.float32) + 0.45 * 255.0
    return np.clip(dodge_sketch(rgb)[..., None] * wash, 0, 255).round().astype(np.uint8)


def oil_painting(rgb: np.ndarray) -> np.ndarray:
    size = max(2, int(round(4 * _scale(rgb))))
    return _rgb(cv2.xphoto.oilPainting(_bgr(rgb), size, 8, cv2.COLOR_BGR2Lab))


def quantize_colors(rgb: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """k-means in RGB; every pixel takes its cluster's centre."""
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    # fit on a subsample: as good for a palette, much faster
    rng = np.random.default_rng(seed)
    sample = pixels[rng.choice(len(pixels), min(len(pixels), 20000), replace=False)]
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, _, centres = cv2.kmeans(sample, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    distances = ((pixels[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return centres[distances.argmin(axis=1)].reshape(rgb.shape).round().astype(np.uint8)


def ink_edges(smooth_rgb: np.ndarray) -> np.ndarray:
    """Outlines for a cartoon, True where ink goes: Canny on the flattened picture, so fur and
    wood grain give no lines, thickened a little."""
    grey = cv2.GaussianBlur(cv2.cvtColor(smooth_rgb, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    edges = cv2.Canny(grey, 40, 100)
    if _scale(smooth_rgb) >= 0.75:
        edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    return edges > 0


def cartoon(rgb: np.ndarray) -> np.ndarray:
    smooth = _bgr(rgb)
    for _ in range(4):  # repeated small bilateral filters flatten colour areas, keep edges
        smooth = cv2.bilateralFilter(smooth, 9, 40, 7)
    flat = quantize_colors(_rgb(smooth), 10)
    flat[ink_edges(_rgb(smooth))] = (20, 20, 20)
    return flat


def poster(rgb: np.ndarray) -> np.ndarray:
    smooth = _rgb(cv2.bilateralFilter(_bgr(rgb), 9, 60, 9))
    return quantize_colors(smooth, 5)


def pixel_art(rgb: np.ndarray, long_side: int = 80, colors: int = 16) -> np.ndarray:
    height, width = rgb.shape[:2]
    factor = long_side / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
    small = quantize_colors(small, colors)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_NEAREST)


def line_art(rgb: np.ndarray) -> np.ndarray:
    """Difference of Gaussians with a soft threshold (XDoG): ink lines on white paper."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    sigma = 1.0 * _scale(rgb)
    dog = cv2.GaussianBlur(grey, (0, 0), sigma) - 0.98 * cv2.GaussianBlur(grey, (0, 0), 1.6 * sigma)
    paper = np.where(dog >= 0.0, 1.0, 1.0 + np.tanh(40.0 * dog))
    ink = np.clip(paper * 255.0, 0, 255).astype(np.uint8)
    return np.repeat(ink[..., None], 3, axis=2)


RENDERERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "watercolor": watercolor,
    "pencil_sketch": pencil_sketch,
    "colored_pencil": colored_pencil,
    "oil_painting": oil_painting,
    "cartoon": cartoon,
    "poster": poster,
    "pixel_art": pixel_art,
    "line_art": line_art,
}
