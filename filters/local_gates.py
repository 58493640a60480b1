"""Gates for local edits (rows with a mask) that a mean over a large region hides.

- `outside_window_change`: the worst window of the kept region (outside the dilated mask), not
  its mean, so a thin leak along the mask or a small smudge elsewhere is not averaged away by
  the untouched rest of the picture.
- damage inside the mask: the edited region's sharpness, noise (its floor, and the part off the
  picture's own colour direction, which a new grainy material does not raise) and JPEG
  blockiness against the source's same region and its surroundings (a ring just outside the
  mask). The most lenient of the two references is used, since the edit may legitimately put new content there (a removed
  object's background is as smooth or textured as what was around it, not as the object).
- the outline's crispness (`filters/edge_crispness.py`): a blurred region blends into its
  surroundings at the mask's contour, which a new backdrop that is smooth on purpose does not.

Measures are taken on the crop around the mask, so a small object costs little on a large
picture. Thresholds: configs/filters/common_gates.yaml (`max_window_change`, `min_inside_*`,
`max_inside_*`), relaxed per task where the task changes texture on purpose."""

from __future__ import annotations

import cv2
import numpy as np

from filters import image_stats
from filters.edge_crispness import edge_crispness_ratio
from filters.gates import GateResult

MEAN_OF_CHANNELS = np.full((1, 3), 1 / 3, np.float32)


def outside_window_change(source: np.ndarray, target: np.ndarray, region: np.ndarray, window_px: int, min_cover: float = 0.5) -> float:
    """The largest mean |diff| (0-255, mean over channels) in any `window_px` square window,
    counting only pixels of `region`; windows less than `min_cover` inside it are left out so a
    few stray pixels at the region's edge do not make a window."""
    if not region.any():
        return 0.0
    diff = cv2.transform(cv2.absdiff(source, target).astype(np.float32), MEAN_OF_CHANNELS)
    weight = region.astype(np.float32)
    size = (window_px, window_px)
    summed = cv2.boxFilter(diff * weight, -1, size, normalize=True, borderType=cv2.BORDER_CONSTANT)
    cover = cv2.boxFilter(weight, -1, size, normalize=True, borderType=cv2.BORDER_CONSTANT)
    valid = cover >= min_cover
    if not valid.any():
        return float(diff[region].mean())
    return float((summed[valid] / cover[valid]).max())


def _crop_box(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    ys, xs = np.nonzero(mask)
    height, width = mask.shape
    return slice(max(0, ys.min() - pad), min(height, ys.max() + pad + 1)), slice(max(0, xs.min() - pad), min(width, xs.max() + pad + 1))


def inside_damage_results(source: np.ndarray, target: np.ndarray, mask: np.ndarray, limits: dict) -> list[GateResult]:
    """Sharpness ratio, noise, colour noise and blockiness increase of the target inside the mask
    against the source inside and around it; a gate whose limit is null is left out, and a mask
    too small to measure gives no results."""
    keys = ("min_inside_sharpness_ratio", "max_inside_noise_increase", "max_inside_colour_noise_increase", "max_inside_blockiness_increase", "min_inside_edge_crispness")
    if not mask.any() or all(limits.get(k) is None for k in keys):
        return []
    ring_px = max(4, round(limits["inside_ring_fraction"] * max(mask.shape)))
    margin = int(limits["mask_margin_px"])
    box = _crop_box(mask, ring_px + margin)
    src, tgt, inside = source[box], target[box], mask[box].astype(bool)
    # one distance transform instead of two dilations by a large disc
    distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    ring = (distance > margin) & (distance <= ring_px + margin)
    if inside.sum() < 64:
        return []
    has_ring = ring.sum() >= 64
    results: list[GateResult] = []
    if limits.get("min_inside_sharpness_ratio") is not None:
        refs = [image_stats.sharpness(src, inside)] + ([image_stats.sharpness(src, ring)] if has_ring else [])
        ratio = image_stats.sharpness(tgt, inside) / max(min(refs), 1e-6)
        results.append(GateResult.at_least("inside_sharpness_ratio", ratio, limits["min_inside_sharpness_ratio"]))
    if limits.get("max_inside_noise_increase") is not None:
        refs = [image_stats.noise_sigma(src, inside)] + ([image_stats.noise_sigma(src, ring)] if has_ring else [])
        added = image_stats.noise_sigma(tgt, inside) - max(refs)
        results.append(GateResult.at_most("inside_noise_increase", added, limits["max_inside_noise_increase"]))
    if limits.get("max_inside_colour_noise_increase") is not None:
        refs = [image_stats.colour_noise_sigma(src, inside)] + ([image_stats.colour_noise_sigma(src, ring)] if has_ring else [])
        added = image_stats.colour_noise_sigma(tgt, inside) - max(refs)
        results.append(GateResult.at_most("inside_colour_noise_increase", added, limits["max_inside_colour_noise_increase"]))
    if limits.get("max_inside_blockiness_increase") is not None:
        # JPEG's grid starts at the picture's corner: the crop must start on it too
        grid = (slice(box[0].start // 8 * 8, box[0].stop), slice(box[1].start // 8 * 8, box[1].stop))
        on_grid = mask[grid].astype(bool)
        added = image_stats.blockiness(target[grid], on_grid) - image_stats.blockiness(source[grid], on_grid)
        results.append(GateResult.at_most("inside_blockiness_increase", added, limits["max_inside_blockiness_increase"]))
    if limits.get("min_inside_edge_crispness") is not None:
        # the crop's padding (ring and margin, 4 px and more) covers the bands the measure reads
        crispness = edge_crispness_ratio(src, tgt, inside)
        if crispness is not None:
            results.append(GateResult.at_least("inside_edge_crispness", crispness, limits["min_inside_edge_crispness"]))
    return results


def local_gate_results(source: np.ndarray, target: np.ndarray, mask: np.ndarray, region: np.ndarray, limits: dict) -> list[GateResult]:
    """Every local gate for one aligned pair: `region` is where the source must survive."""
    results: list[GateResult] = []
    if limits.get("max_window_change") is not None:
        window = max(4, round(limits["window_fraction"] * max(mask.shape)))
        results.append(GateResult.at_most("outside_window_change", outside_window_change(source, target, region, window), limits["max_window_change"]))
    return results + inside_damage_results(source, target, mask.astype(bool), limits)
