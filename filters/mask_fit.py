"""Whether a local edit's mask follows the source's own object outline.

A good object mask's outline lies on the object's edges in the source. A mask that cuts through
the object (a wheel or an arm left out of a subject, half a cup recoloured), a crude stand-in
shape (the ellipse fallback) or one spilling onto flat background has long stretches of outline
where the source has no edge. `mask_fit` is the share of the outline (the picture's frame left
out: a background mask reaching it is no outline) within a few pixels of a strong source edge,
"strong" meaning a Lab gradient at least twice the mean gradient around the mask (and more than
noise: flat surroundings have no strong edge at all).

Cheap: measured on the crop around the outline, resized to WORK_SIDE on its long side, so a
large and a small object are judged at the same relative precision. The outline is the same
whichever side the mask marks, so a background_change's mask (the background) needs no
inverting. Limit: `min_mask_fit` in configs/filters/common_gates.yaml (null: off), on per task
where the mask is meant to be an object's outline."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gates import GateResult

WORK_SIDE = 256  # the crop's long side when measured
BLUR_SIGMA = 1.0  # at WORK_SIDE: JPEG noise and fine texture are not edges
STRONG_EDGE = 2.0  # a strong edge: at least this many times the crop's mean gradient ...
MIN_EDGE = 20.0  # ... and at least a sharp step of 8 grey levels at source size (sensor noise of sigma 3 stays under 12)
MIN_OUTLINE_PX = 16  # a shorter outline (at WORK_SIDE: a sliver along the crop's edge) says nothing


def outline(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a neighbour outside the mask; the picture's frame does not count (the
    erosion replicates the border), since a region reaching the frame is cut by it, not drawn."""
    mask = mask.astype(bool)
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask & (eroded == 0)


def _outline_crop(source: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The source and mask around the outline, resized to WORK_SIDE, and the scale applied."""
    ys, xs = np.nonzero(outline(mask))
    if ys.size == 0:
        return None
    height, width = mask.shape
    pad = max(8, round(0.05 * max(height, width)))  # some surroundings: the mean gradient is taken over them too
    box = (slice(max(0, ys.min() - pad), min(height, ys.max() + pad + 1)), slice(max(0, xs.min() - pad), min(width, xs.max() + pad + 1)))
    crop, crop_mask = source[box], mask[box].astype(np.float32)
    scale = WORK_SIDE / max(crop.shape[:2])
    size = (max(8, round(crop.shape[1] * scale)), max(8, round(crop.shape[0] * scale)))
    crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return crop, cv2.resize(crop_mask, size, interpolation=cv2.INTER_AREA) > 0.5, scale


def lab_gradient(rgb: np.ndarray, sigma: float = BLUR_SIGMA) -> np.ndarray:
    """Gradient magnitude over the three Lab channels: a colour edge of equal brightness counts."""
    lab = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32), (0, 0), sigma)
    squared = sum(cv2.Sobel(lab[..., c], cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(lab[..., c], cv2.CV_32F, 0, 1) ** 2 for c in range(3))
    return np.sqrt(squared)


def mask_fit(source: np.ndarray, mask: np.ndarray, tolerance_px: float = 2.0, grown_px: int = 0) -> float | None:
    """Share (0-1) of the mask's outline within `tolerance_px` (pixels of the crop at
    WORK_SIDE) plus `grown_px` (source pixels) of a strong source edge; None when the mask has
    no outline to judge (empty, or the whole picture)."""
    cropped = _outline_crop(source, mask)
    if cropped is None:
        return None
    crop, crop_mask, scale = cropped
    line = outline(crop_mask)
    if line.sum() < MIN_OUTLINE_PX:
        return None
    gradient = lab_gradient(crop)
    # an enlarged crop spreads each step over more pixels: the floor shrinks with it
    strong = gradient >= max(STRONG_EDGE * float(gradient.mean()), MIN_EDGE / max(1.0, scale))
    reach = max(1, round(tolerance_px + grown_px * scale))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    near_strong = cv2.dilate(strong.astype(np.uint8), kernel) > 0
    return float(near_strong[line].mean())


def mask_fit_results(source: np.ndarray, mask: np.ndarray, limits: dict, touched_px: int = 0) -> list[GateResult]:
    """The mask-fit gate, or nothing when its limit is null or the mask has no outline. A
    generator that grew the mask (`touched_px`) moved its outline off the object by as much."""
    if limits.get("min_mask_fit") is None:
        return []
    value = mask_fit(source, mask, float(limits["mask_fit_tolerance_px"]), touched_px)
    return [] if value is None else [GateResult.at_least("mask_fit", value, limits["min_mask_fit"])]
