"""Draw the new words where the old ones were erased: the same font size, weight, colour and
angle as the old line, centred on it. Nothing outside the row's mask changes."""

from __future__ import annotations

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.lab_recolor import inner_alpha
from stages.text_layout import Frame, paint_text


def render_replacement(source: np.ndarray, erased: np.ndarray, mask: np.ndarray, edit: dict, feather_px: int) -> np.ndarray:
    drawn = paint_text(erased, edit["new_text"], edit["weight"], edit["font_px"], edit["text_rgb"], Frame.from_dict(edit["edit_frame"]), tuple(edit["ink_centre"]))
    # the eraser (a generator) may have touched a margin around the mask: only the mask changes
    alpha = inner_alpha(mask, feather_px)[..., None]
    out = np.round(source.astype(np.float32) * (1.0 - alpha) + drawn.astype(np.float32) * alpha).astype(np.uint8)
    out[~mask] = source[~mask]
    return out


class TextRenderStage(Stage):
    name = "text_render"
    reads = ("edit", "source_image", "target_image", "mask")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=8)

    def __init__(self, tasks: tuple[str, ...], feather_px: int):
        self.tasks = tasks
        self.feather_px = feather_px

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        source = decode_image(row["source_image"]["bytes"])
        if not row.get("target_image"):
            raise ValueError("text_render needs the erased picture in target_image")
        erased = decode_image(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        target = render_replacement(source, erased, mask, edit, self.feather_px)
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(row, self.name, font_px=edit["font_px"], weight=edit["weight"], text_rgb=edit["text_rgb"], angle=edit["edit_frame"]["angle"], feather_px=self.feather_px)
        return row
