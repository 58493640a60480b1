"""Erase the old words (cpu profile): OpenCV inpainting over the ink of the old line only, so
the plate or wall around the letters keeps its own pixels."""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import record_fallback, record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.text_layout import Frame, frame_mask
from tasks.text.style import glyph_mask_in_image


def erase_text(rgb: np.ndarray, frame: Frame, allowed: np.ndarray, dilate_px: int, radius: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """(picture without the line's ink, the inpainted mask, whether the ink was found). Without
    ink the whole frame is inpainted."""
    ink = glyph_mask_in_image(rgb, frame) & frame_mask(frame, rgb.shape[:2])
    found = ink.sum() >= 4
    region = ink if found else frame_mask(frame, rgb.shape[:2])
    if dilate_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate_px + 1, 2 * dilate_px + 1))
        region = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
    region &= allowed
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    filled = cv2.inpaint(bgr, region.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)[..., ::-1]
    return np.ascontiguousarray(filled), region, found


class TextEraseStage(Stage):
    name = "text_erase"
    reads = ("edit", "source_image", "mask")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], dilate_px: int, radius: float):
        self.tasks = tasks
        self.dilate_px = dilate_px
        self.radius = radius

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        rgb = decode_image(row["source_image"]["bytes"])
        allowed = decode_mask(row["mask"]["bytes"])
        # a little larger than the line box, so letters that touch its edge go too
        frame = Frame.from_dict(edit["frame"]).grown(0.1 * edit["frame"]["height"], 0.1 * edit["frame"]["height"])
        erased, region, found = erase_text(rgb, frame, allowed, self.dilate_px, self.radius)
        if not found:
            record_fallback(row, self.name, "no ink found in the text box; inpainted the whole box")
        row["target_image"] = schema.image_value(encode_image(erased))
        record_stage(row, self.name, backend="opencv.inpaint(TELEA)", radius=self.radius, dilate_px=self.dilate_px, inpainted_px=int(region.sum()))
        return row
