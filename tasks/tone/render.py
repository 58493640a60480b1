"""Classical tone edits on whole pictures: a grade applied to the source, or, for restoration,
a defect synthesised on the source, which becomes the row's new source while the clean photo
becomes its target. Rows whose edit needs a generator pass through untouched."""

from __future__ import annotations

import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from tasks.tone.degradations import DEGRADATIONS
from tasks.tone.grades import GRADES

CLASSICAL = "classical"


def to_float(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / 255.0


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def render_tone(rgb: np.ndarray, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(source, target) for the named classical edit of `rgb`."""
    rng = np.random.default_rng(seed)
    if name in GRADES:
        return rgb, to_uint8(GRADES[name](to_float(rgb), rng))
    if name in DEGRADATIONS:
        return to_uint8(DEGRADATIONS[name](to_float(rgb), rng)), rgb
    raise ValueError(f"no classical tone edit {name!r}; have: {', '.join([*GRADES, *DEGRADATIONS])}")


class ToneRenderStage(Stage):
    name = "tone_render"
    reads = ("edit", "source_image")
    writes = ("source_image", "target_image", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        if edit["backend"] != CLASSICAL:
            return row
        source, target = render_tone(decode_image(row["source_image"]["bytes"]), edit["name"], edit["seed"])
        if edit["kind"] == "restore":
            row["source_image"] = schema.image_value(encode_image(source))
        row["target_image"] = schema.image_value(encode_image(target))
        record_stage(row, self.name, backend="numpy+opencv", edit=edit["name"], seed=edit["seed"], synthesised_source=edit["kind"] == "restore")
        return row


CLASSICAL_TONE_EDITS = frozenset([*GRADES, *DEGRADATIONS])
