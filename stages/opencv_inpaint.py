"""Fill a masked region from its surroundings with OpenCV: the cpu profile's stand-in for Flux-Fill
when an object is removed.

Diffusion-free inpainting only looks right for small holes: Telea's fast marching (and
Navier-Stokes) propagate the border inwards, which is convincing on smooth backgrounds (sky, a
saucer, a wall) and a visible smear on texture; xphoto's shift-map copies patches from nearby,
which keeps texture (fur, grass) but tears smooth gradients. `auto` picks by the texture of the
ring around the hole. Holes above `max_area_fraction` of the image are skipped, not attempted."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.mask_ops import edge_density, ring_width, surrounding_ring
from pipeline.core.rows import mark, record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.diffusion_common import read_source_and_mask, write_target

METHODS = ("telea", "ns", "fsr_fast", "shiftmap", "auto")


def crop_around(mask: np.ndarray, pad_fraction: float = 1.0, least_px: int = 24) -> tuple[slice, slice]:
    """The mask's bounding box grown by `pad_fraction` of its size on each side: the context the
    fill may draw from (nearby background is the best guess for what lies behind an object)."""
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    pad_y = max(least_px, int(pad_fraction * (y1 - y0)))
    pad_x = max(least_px, int(pad_fraction * (x1 - x0)))
    height, width = mask.shape
    return slice(max(0, y0 - pad_y), min(height, y1 + pad_y)), slice(max(0, x0 - pad_x), min(width, x1 + pad_x))


def choose_method(rgb: np.ndarray, mask: np.ndarray, texture_edge_density: float) -> str:
    """Shift-map where the surroundings are textured, Telea where they are smooth."""
    ring = surrounding_ring(mask, ring_width(mask, 0.3))
    return "shiftmap" if edge_density(rgb, ring) >= texture_edge_density else "telea"


def inpaint(rgb: np.ndarray, mask: np.ndarray, method: str, radius_px: int = 5) -> np.ndarray:
    """The picture with `mask` filled from around it; pixels outside the mask are the input's."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    hole = mask.astype(np.uint8) * 255
    if method == "telea":
        out = cv2.inpaint(bgr, hole, radius_px, cv2.INPAINT_TELEA)
    elif method == "ns":
        out = cv2.inpaint(bgr, hole, radius_px, cv2.INPAINT_NS)
    elif method in ("fsr_fast", "shiftmap"):
        flag = cv2.xphoto.INPAINT_FSR_FAST if method == "fsr_fast" else cv2.xphoto.INPAINT_SHIFTMAP
        out = np.zeros_like(bgr)
        cv2.xphoto.inpaint(bgr, 255 - hole, out, flag)  # xphoto's mask marks the pixels to keep
    else:
        raise ValueError(f"unknown inpainting method {method!r}; known: {', '.join(METHODS)}")
    filled = out[..., ::-1].copy()
    filled[~mask] = rgb[~mask]
    return filled


class OpenCvInpaintStage(Stage):
    """Writes `target_image`: the source with the row's mask filled in."""

    name = "opencv_inpaint"
    reads = ("source_image", "mask")
    writes = ("target_image", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], method: str, radius_px: int, max_area_fraction: float, texture_edge_density: float):
        if method not in METHODS:
            raise ValueError(f"unknown inpainting method {method!r}; known: {', '.join(METHODS)}")
        self.tasks = tasks
        self.method = method
        self.radius_px = radius_px
        self.max_area_fraction = max_area_fraction
        self.texture_edge_density = texture_edge_density

    def process_row(self, row: Row) -> Row:
        source, mask = read_source_and_mask(row)
        if mask is None or not mask.any():
            raise ValueError("opencv_inpaint needs a non-empty mask")
        area = float(mask.mean())
        if area > self.max_area_fraction:
            return mark(
                row,
                schema.SKIPPED,
                f"{self.name}: the region to fill covers {area:.0%} of the image; OpenCV inpainting "
                f"only looks right up to {self.max_area_fraction:.0%}",
            )
        ys, xs = crop_around(mask)
        method = choose_method(source[ys, xs], mask[ys, xs], self.texture_edge_density) if self.method == "auto" else self.method
        target = source.copy()
        target[ys, xs] = inpaint(source[ys, xs], mask[ys, xs], method, self.radius_px)
        write_target(row, target)
        # mask_dilate_px: this fill writes inside the mask and nowhere else
        record_stage(
            row, self.name, backend=f"opencv {cv2.__version__}", method=method, radius_px=self.radius_px,
            area_fraction=round(area, 4), mask_dilate_px=0,
        )
        return row
