"""Naming a measured motion: which way the subject went (eight image directions) and what kind
of motion it reads as (a move, a rise, a fall, coming closer or going away), with the words for
each in English and Chinese."""

from __future__ import annotations

import math

# counter-clockwise from +x, in image terms (y grows downwards, so "up" is -y)
SECTORS = ("right", "up_right", "up", "up_left", "left", "down_left", "down", "down_right")

DIRECTION_EN = {
    "right": "to the right", "left": "to the left", "up": "up", "down": "down",
    "up_right": "up and to the right", "up_left": "up and to the left",
    "down_right": "down and to the right", "down_left": "down and to the left",
}
DIRECTION_ZH = {
    "right": "向右", "left": "向左", "up": "向上", "down": "向下",
    "up_right": "向右上方", "up_left": "向左上方", "down_right": "向右下方", "down_left": "向左下方",
}
KINDS = ("move", "rise", "fall", "approach", "recede")


def direction_of(dx: float, dy: float) -> str:
    """The nearest of eight directions to an image-space shift."""
    angle = math.degrees(math.atan2(-dy, dx)) % 360
    return SECTORS[int(((angle + 22.5) % 360) // 45)]


def classify_motion(shift: tuple[float, float], area_ratio: float, subject_px: float, scale_ratio: float) -> tuple[str, str | None]:
    """(kind, direction). A subject that grows or shrinks by `scale_ratio` while shifting less
    than half its own size comes closer or goes away; otherwise the shift decides."""
    dx, dy = shift
    small_shift = math.hypot(dx, dy) < 0.5 * subject_px
    if small_shift and area_ratio >= scale_ratio:
        return "approach", None
    if small_shift and area_ratio <= 1 / scale_ratio:
        return "recede", None
    direction = direction_of(dx, dy)
    if direction.startswith("up"):
        return "rise", direction
    if direction.startswith("down"):
        return "fall", direction
    return "move", direction


def opposite(direction: str) -> str:
    return SECTORS[(SECTORS.index(direction) + 4) % 8]
