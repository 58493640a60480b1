"""Recolour a masked region in Lab space: chroma moves to the target colour, the pixel-to-pixel
variation of lightness and chroma (shading, texture) stays."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_Lab2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def inner_alpha(mask: np.ndarray, feather_px: int) -> np.ndarray:
    """A soft edge that lies wholly inside the mask, so nothing outside it changes."""
    if feather_px <= 0:
        return mask.astype(np.float32)
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(distance / float(feather_px), 0.0, 1.0).astype(np.float32)


def recolor(rgb: np.ndarray, mask: np.ndarray, target_rgb: tuple[int, int, int], lightness_shift: float, feather_px: int) -> np.ndarray:
    lab = rgb_to_lab(rgb)
    target = rgb_to_lab(np.array([[target_rgb]], np.uint8))[0, 0]
    inside = mask.astype(bool)
    mean = lab[inside].mean(axis=0)
    edited = lab.copy()
    # keep each pixel's deviation from the region's mean, move the mean to the target
    edited[..., 1:] = lab[..., 1:] - mean[1:] + target[1:]
    edited[..., 0] = lab[..., 0] + lightness_shift * (target[0] - mean[0])
    edited[..., 0] = np.clip(edited[..., 0], 0.0, 100.0)
    recoloured = lab_to_rgb(edited)
    alpha = inner_alpha(inside, feather_px)[..., None]
    out = rgb.astype(np.float32) * (1.0 - alpha) + recoloured.astype(np.float32) * alpha
    out = np.round(out).astype(np.uint8)
    out[~inside] = rgb[~inside]  # exactly untouched outside
    return out


class LabRecolorStage(Stage):
    name = "lab_recolor"
    reads = ("edit", "source_image", "mask")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, tasks: tuple[str, ...], lightness_shift: float, feather_px: int):
        self.tasks = tasks
        self.lightness_shift = lightness_shift
        self.feather_px = feather_px

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        rgb = decode_image(row["source_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        target = recolor(rgb, mask, tuple(edit["target_rgb"]), self.lightness_shift, self.feather_px)
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(row, self.name, backend="opencv.Lab", lightness_shift=self.lightness_shift, feather_px=self.feather_px)
        return row
