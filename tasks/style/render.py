"""The cpu profile's restyling: each row's whole picture drawn in its edit's style with OpenCV."""

from __future__ import annotations

from pipeline.core import schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from tasks.style.effects import RENDERERS


class StyleRenderStage(Stage):
    name = "style_render"
    reads = ("edit", "source_image")
    writes = ("target_image", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=4)

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def process_row(self, row: Row) -> Row:
        style = schema.loads(row["edit"])["style"]
        if style not in RENDERERS:
            raise ValueError(f"no classical renderer for style {style!r}; have: {', '.join(RENDERERS)}")
        target = RENDERERS[style](decode_image(row["source_image"]["bytes"]))
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(row, self.name, backend=f"opencv.{RENDERERS[style].__name__}", style=style)
        return row
