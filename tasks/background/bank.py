"""Renders the cpu path's backdrops (stages/background_scenes.py BACKDROPS) at any size: skies and
studio walls drawn from gradients and noise, grey textures tinted, photos scaled to cover the
frame and cropped to its centre."""

from __future__ import annotations

import hashlib
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image

from pipeline.core.inputs import samples_dir
from tasks.background.scenes import Backdrop


def cover_resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scaled to cover height x width, keeping its aspect, then cropped to the centre."""
    scale = max(height / rgb.shape[0], width / rgb.shape[1])
    size = (max(width, round(rgb.shape[1] * scale)), max(height, round(rgb.shape[0] * scale)))
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y0, x0 = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[y0 : y0 + height, x0 : x0 + width])


def _ramp(stops: list[tuple[float, tuple[int, int, int]]], t: np.ndarray) -> np.ndarray:
    """Colours interpolated between (position, rgb) stops at positions t in [0, 1]."""
    positions = [p for p, _ in stops]
    return np.stack([np.interp(t, positions, [c[k] for _, c in stops]) for k in range(3)], axis=-1)


def _smooth_noise(height: int, width: int, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Noise in [0, 1] with features about `scale` of the frame's long side wide."""
    side = max(2, int(round(1.0 / scale)))
    coarse = rng.random((side, side)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _radial(height: int, width: int) -> np.ndarray:
    """0 at the centre, about 1 in the corners."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.sqrt(((xx - width / 2) / (width / 2)) ** 2 + ((yy - height * 0.45) / (height / 2)) ** 2) / np.sqrt(2)


def procedural(name: str, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None].repeat(width, axis=1)
    if name == "sky":
        out = _ramp([(0.0, (38, 88, 185)), (0.7, (120, 170, 225)), (1.0, (190, 215, 240))], t)
        clouds = np.clip((_smooth_noise(height, width, rng, 0.12) - 0.55) * 3.0, 0, 1)[..., None]
        out = out * (1 - 0.7 * clouds) + 245 * 0.7 * clouds
    elif name == "sunset":
        out = _ramp([(0.0, (48, 38, 96)), (0.45, (200, 90, 80)), (0.8, (250, 165, 80)), (1.0, (255, 205, 120))], t)
        yy, xx = np.mgrid[0:height, 0:width]
        sun = np.exp(-(((xx - 0.7 * width) ** 2 + (yy - 0.82 * height) ** 2) / (2 * (0.12 * max(height, width)) ** 2)))[..., None]
        out = out * (1 - 0.6 * sun) + np.array([255, 230, 170]) * 0.6 * sun
    elif name == "stars":
        out = _ramp([(0.0, (4, 6, 20)), (1.0, (22, 32, 64))], t)
        count = max(20, height * width // 600)
        ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
        stars = np.zeros((height, width), np.float32)
        stars[ys, xs] = rng.uniform(0.4, 1.0, count)
        stars = cv2.GaussianBlur(stars, (0, 0), 0.7) * 4.0
        out = out + 255 * np.clip(stars, 0, 1)[..., None]
    elif name in ("studio_light", "studio_dark"):
        centre, edge = ((238, 236, 232), (170, 168, 165)) if name == "studio_light" else ((78, 80, 88), (18, 18, 22))
        out = _ramp([(0.0, centre), (1.0, edge)], np.clip(_radial(height, width), 0, 1))
    else:
        raise ValueError(f"no procedural backdrop named {name!r}")
    grain = rng.normal(0.0, 1.5, (height, width, 1))  # breaks up banding in the gradients
    return np.clip(np.round(out + grain), 0, 255).astype(np.uint8)


@lru_cache(maxsize=16)
def _file_rgb(name: str) -> np.ndarray:
    with Image.open(samples_dir() / name) as img:
        return np.asarray(img.convert("RGB"))


@lru_cache(maxsize=16)
def file_sha256(name: str) -> str:
    return hashlib.sha256((samples_dir() / name).read_bytes()).hexdigest()


def tinted(grey: np.ndarray, dark: tuple[int, int, int], light: tuple[int, int, int]) -> np.ndarray:
    level = (grey.astype(np.float32) / 255.0)[..., None]
    out = np.array(dark, np.float32) * (1 - level) + np.array(light, np.float32) * level
    return np.round(out).astype(np.uint8)


def render(backdrop: Backdrop, height: int, width: int, seed: int = 0) -> np.ndarray:
    if backdrop.kind == "procedural":
        return procedural(backdrop.source, height, width, seed)
    rgb = _file_rgb(backdrop.source)
    if backdrop.kind == "texture":
        rgb = tinted(rgb[..., 0], *backdrop.tint)
    elif backdrop.kind != "photo":
        raise ValueError(f"unknown backdrop kind {backdrop.kind!r}")
    return cover_resize(rgb, height, width)
