"""How crisp an edit's outline is: the colour step across the mask's contour, measured right at
the contour, as a share of the step measured a few pixels further inside.

A target whose edited region was blurred (or given a soft halo) blends the two sides at the
outline: the pixels just inside the contour sit part way between the outside and the region's
own colour, so the share drops (on the filter benchmark's new backgrounds: 0.8-1.0 as made,
0.54-0.63 blurred by sigma 1 px, 0.3-0.39 by sigma 2; a photo's own outlines 0.67-0.75). A flat or smooth region keeps the measure working, because it reads the step
against what lies outside, not the region's own texture; it says nothing where the two sides
have the same colour, so only contour points with a clear step count.

It reads light blur, the kind a generator's soft matte or a careless resample leaves (sigma up
to about 3 px): a much heavier blur mixes the band further inside as well, and the share climbs
back (sigma 8: about 0.95 on a test scene), so a backdrop defocused as a whole, which can be
meant, is left to the judge. Distances are in pixels of the picture as the gates see it (the
run's working size)."""

from __future__ import annotations

import cv2
import numpy as np

NEAR_PX = 1.0  # "at the contour": the first pixel on each side
DEEP_PX = (3.0, 6.0)  # "further inside": past most of a blur of sigma 1-2 and a 1-2 px feather
WINDOW_PX = 9  # each band's colour is averaged over this neighbourhood of a contour point
MIN_STEP = 12.0  # Lab distance: contour points with a smaller step between the sides carry no signal
MIN_POINTS = 20


def _band_means(lab: np.ndarray, band: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's mean Lab colour over the band's pixels in its window, and how much of the
    window the band covers."""
    cover = cv2.boxFilter(band.astype(np.float32), -1, (WINDOW_PX, WINDOW_PX))
    summed = cv2.boxFilter(lab * band[..., None], -1, (WINDOW_PX, WINDOW_PX))
    return summed / np.maximum(cover, 1e-6)[..., None], cover


def edge_crispness(rgb: np.ndarray, mask: np.ndarray) -> float | None:
    """Sum over contour points of min(step at the contour, step further in) / sum of the step
    further in: 1.0 for a hard outline, lower as the inside blends into the outside. None where
    too few contour points have a step to measure (a region the colour of its surroundings)."""
    inside = mask.astype(bool)
    inside_distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 5)
    outside_distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, 5)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    outside, outside_cover = _band_means(lab, (outside_distance > 0) & (outside_distance <= NEAR_PX))
    near, near_cover = _band_means(lab, (inside_distance > 0) & (inside_distance <= NEAR_PX))
    deep, deep_cover = _band_means(lab, (inside_distance > DEEP_PX[0]) & (inside_distance <= DEEP_PX[1]))
    contour = (inside_distance > 0) & (inside_distance <= 1.5)
    points = contour & (outside_cover > 0.05) & (near_cover > 0.05) & (deep_cover > 0.05)
    full_step = np.linalg.norm(deep[points] - outside[points], axis=1)
    near_step = np.linalg.norm(near[points] - outside[points], axis=1)
    clear = full_step > MIN_STEP
    if clear.sum() < MIN_POINTS:
        return None
    return float(np.minimum(near_step[clear], full_step[clear]).sum() / full_step[clear].sum())


def edge_crispness_ratio(source: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float | None:
    """The target's outline crispness against the source's along the same contour: about 1 or
    more when the edit keeps a hard outline (a new background cut cleanly against the subject),
    well under 1 when the edited side was blurred. None where either cannot be measured."""
    before, after = edge_crispness(source, mask), edge_crispness(target, mask)
    if before is None or after is None:
        return None
    return after / max(before, 1e-6)
