"""A short clip the project makes itself, so the bundled samples cover motion_change: a shaded
ball rolls and bounces across a lawn for three seconds."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

SAMPLE_CLIP_LICENSE = "CC0-1.0"
CLIP_NAME = "rolling_ball.mp4"
SIZE = (426, 240)  # 240p, 16:9
FPS = 12
SECONDS = 3


def _background() -> np.ndarray:
    import skimage.data

    grass = skimage.data.grass()[:288].astype(np.float32) / 255.0  # a lawn, seen from above
    tinted = np.stack([grass * 110, grass * 190 + 30, grass * 70], axis=2)
    return cv2.resize(np.clip(tinted, 0, 255).astype(np.uint8), SIZE, interpolation=cv2.INTER_AREA)


def _ball(frame: np.ndarray, cx: float, cy: float, radius: int) -> None:
    yy, xx = np.mgrid[0 : frame.shape[0], 0 : frame.shape[1]]
    dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2)
    inside = dist <= radius
    # lit from the top left: brighter towards the highlight, darker at the rim
    light = np.clip(1.15 - np.sqrt((xx - cx + radius / 3) ** 2 + (yy - cy + radius / 3) ** 2) / (1.6 * radius), 0.25, 1.0)
    colour = np.array([40, 90, 220], np.float32)
    frame[inside] = np.clip(colour * light[inside][:, None], 0, 255).astype(np.uint8)


def render_clip(path: Path) -> Path:
    background = _background()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}: no mp4v encoder")
    frames = FPS * SECONDS
    radius = 26
    for i in range(frames):
        t = i / (frames - 1)
        cx = 40 + t * (SIZE[0] - 80)
        cy = SIZE[1] - 40 - abs(np.sin(t * 2.5 * np.pi)) * 110  # bounces
        frame = background.copy()
        shadow_y = SIZE[1] - 18
        cv2.ellipse(frame, (int(cx), shadow_y), (radius, 6), 0, 0, 360, (40, 30, 25), -1)
        _ball(frame, cx, cy, radius)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def sample_clip() -> Path:
    """The clip in the cache folder, rendered on first use (deterministic, so every machine
    makes the same frames)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "editing-pipeline" / "samples"
    path = base / CLIP_NAME
    if not path.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = base / f".{CLIP_NAME}.{os.getpid()}.mp4"
        render_clip(tmp)
        os.replace(tmp, path)
    return path
