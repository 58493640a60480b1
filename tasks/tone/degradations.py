"""Defects synthesised on a clean photo, for restoration pairs (degraded source, clean target).
Each maps float RGB in 0-1 to the same, randomised by the generator it is given."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from stages.material_textures import smooth_noise

Degradation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def haze(rgb, rng):
    """The scattering model I = J t + A (1 - t), with a made-up depth: farther toward the top,
    uneven like real fog."""
    height, width = rgb.shape[:2]
    rows = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None]
    depth = 0.6 * rows + 0.4 * (smooth_noise(height, width, 3, rng) * 0.5 + 0.5)
    transmission = np.exp(-rng.uniform(1.1, 1.6) * depth)[..., None]
    airlight = np.float32(rng.uniform(0.82, 0.95)) + np.array([0.0, 0.01, 0.03], np.float32)
    return rgb * transmission + airlight * (1.0 - transmission)


def rain(rgb, rng):
    """Bright slanted streaks (sparse drops smeared along a line), screened over a dimmed, hazier photo."""
    height, width = rgb.shape[:2]
    length = max(5, int(0.05 * max(height, width)))
    # as many drops per streak length at every size: the same share of the picture is rain
    density = 0.12 / length
    drops = (rng.random((height, width)) < density).astype(np.float32) * rng.uniform(0.5, 1.0, (height, width)).astype(np.float32)
    kernel = np.zeros((length, length), np.float32)
    kernel[:, length // 2] = 1.0
    angle = rng.uniform(-20, 20)
    kernel = cv2.warpAffine(kernel, cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0), (length, length))
    streaks = cv2.filter2D(drops, -1, kernel / max(kernel.sum(), 1e-6) * length * 0.35)
    streaks = np.clip(cv2.GaussianBlur(streaks, (0, 0), 0.6), 0, 1)[..., None]
    dim = 0.92 * rgb + 0.04
    return 1.0 - (1.0 - dim) * (1.0 - 0.85 * streaks)


def low_light(rgb, rng):
    """Underexposed: far less light, crushed shadows, sensor noise, a slight blue cast."""
    dark = np.clip(rgb, 0, 1) ** 1.8 * rng.uniform(0.25, 0.4)
    dark = dark * np.array([0.92, 0.97, 1.08], np.float32)
    noise = rng.normal(0.0, 0.015, rgb.shape).astype(np.float32)
    return dark + noise * np.sqrt(np.clip(dark, 0.01, 1.0))


def noise(rgb, rng):
    """Sensor noise: strong luminance grain plus coloured chroma speckle."""
    sigma = rng.uniform(0.05, 0.08)
    grain = rng.normal(0.0, sigma, rgb.shape[:2]).astype(np.float32)[..., None]
    chroma = rng.normal(0.0, sigma * 0.5, rgb.shape).astype(np.float32)
    return rgb + grain + chroma


DEGRADATIONS: dict[str, Degradation] = {"dehaze": haze, "derain": rain, "low_light": low_light, "denoise": noise}
