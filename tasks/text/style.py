"""How an existing line of text looks: which pixels are ink, its colour, its background, its size
in font pixels and its weight, read from the upright patch of its frame."""

from __future__ import annotations

import cv2
import numpy as np

from stages.text_layout import (
    Frame,
    draw_text_alpha,
    extract_patch,
    ink_box,
    patch_to_image,
)

REFERENCE_PX = 100  # font size at which a text's ink proportions are measured


def glyph_mask(patch: np.ndarray) -> np.ndarray:
    """Ink pixels of an upright text patch: Otsu on lightness, and of the two classes the one
    that touches the patch border less is the ink (the background surrounds the text)."""
    lightness = cv2.cvtColor(patch, cv2.COLOR_RGB2Lab)[..., 0]
    _, dark = cv2.threshold(lightness, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    dark = dark.astype(bool)
    border = np.concatenate([dark[0], dark[-1], dark[:, 0], dark[:, -1]])
    ink = dark if border.mean() < 0.5 else ~dark
    return ink


def ink_extent(mask: np.ndarray, min_share: float = 0.02) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the rows and columns that hold a real share of the ink (specks ignored)."""
    if mask.sum() < 4:
        return None
    rows = mask.sum(axis=1)
    cols = mask.sum(axis=0)
    ys = np.flatnonzero(rows >= min_share * rows.max())
    xs = np.flatnonzero(cols >= min_share * cols.max())
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _median_colour(patch: np.ndarray, region: np.ndarray) -> list[int]:
    return [int(v) for v in np.median(patch[region], axis=0)]


def estimate_style(rgb: np.ndarray, frame: Frame, text: str) -> dict | None:
    """Font size, weight, ink colour, background colour and where the ink sits in the frame, or
    None when no ink is found."""
    patch = extract_patch(rgb, frame)
    ink = glyph_mask(patch)
    extent = ink_extent(ink)
    if extent is None or ink.all():
        return None
    x0, y0, x1, y1 = extent
    core = cv2.erode(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    text_rgb = _median_colour(patch, core if core.sum() >= 8 else ink)
    bg_rgb = _median_colour(patch, ~cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool))
    # size: the ink height of this text in our font at REFERENCE_PX, scaled to the measured one
    _, ry0, _, ry1 = ink_box(text, "regular", REFERENCE_PX)
    px = max(6, int(round(REFERENCE_PX * (y1 - y0) / max(1, ry1 - ry0))))
    weight = _closest_weight(ink[y0:y1, x0:x1], text, px)
    return {
        "font_px": px,
        "weight": weight,
        "text_rgb": text_rgb,
        "bg_rgb": bg_rgb,
        "ink_centre": [round((x0 + x1) / 2, 2), round((y0 + y1) / 2, 2)],
    }


def _closest_weight(ink: np.ndarray, text: str, px: int) -> str:
    """Regular or bold: whichever, drawn at this size, covers a share of its ink box closest to
    the measured one."""
    measured = ink.mean()
    best, best_gap = "regular", float("inf")
    for weight in ("regular", "bold"):
        x0, y0, x1, y1 = ink_box(text, weight, px)
        w, h = max(1, x1 - x0), max(1, y1 - y0)
        drawn = draw_text_alpha(text, weight, px, (w, h), (w / 2, h / 2)) > 0.5
        gap = abs(drawn.mean() - measured)
        if gap < best_gap:
            best, best_gap = weight, gap
    return best


def glyph_mask_in_image(rgb: np.ndarray, frame: Frame) -> np.ndarray:
    """The ink of the text inside `frame`, as a mask over the whole image."""
    patch = extract_patch(rgb, frame)
    ink = glyph_mask(patch).astype(np.uint8) * 255
    return patch_to_image(ink, frame, rgb.shape[:2], cv2.INTER_NEAREST) > 127
