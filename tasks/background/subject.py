"""The subject of a background change as a group: the chosen (largest) object plus every other
object whose box lies mostly inside its box, such as the cup standing on a saucer. A segmenter
run on the big box alone tends to lose such parts where they look like the background; their own
masks, joined to the subject's, keep them."""

from __future__ import annotations

import numpy as np

from pipeline.core.image_io import decode_mask
from pipeline.core.rows import blob, update_work, work
from pipeline.core.stage import Resources, Row, Stage


def inside_share(inner: list[float], outer: list[float]) -> float:
    """Share of box `inner`'s area (x, y, w, h) that lies inside box `outer`."""
    ix, iy, iw, ih = inner
    ox, oy, ow, oh = outer
    w = max(0.0, min(ix + iw, ox + ow) - max(ix, ox))
    h = max(0.0, min(iy + ih, oy + oh) - max(iy, oy))
    return w * h / max(1e-6, iw * ih)


class SubjectGroupStage(Stage):
    """Appends the objects contained in the selected subject to `selected`, marked `part_of`, so
    the mask stage segments them too."""

    name = "background_subject_group"
    reads = ("work.selected", "work.objects")
    writes = ("work.selected",)
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], min_inside: float, scenery_labels: list[str] = ()):
        self.tasks = tasks
        self.min_inside = min_inside
        self.scenery = {label.lower() for label in scenery_labels}

    def process_row(self, row: Row) -> Row:
        state = work(row)
        subject = state["selected"][0]
        parts = [
            {**o, "part_of": subject["label"]}
            for o in state.get("objects") or []
            if o["bbox"] != subject["bbox"]
            and o["label"].lower() not in self.scenery
            and inside_share(o["bbox"], subject["bbox"]) >= self.min_inside
        ]
        update_work(row, selected=[subject, *parts])
        return row


def subject_mask(row: Row, methods: list[str] | None = None) -> np.ndarray:
    """The union of the masks of the subject and its parts (`mask:0`, `mask:1`, ...). A part
    whose mask is only an ellipse stand-in (`methods[i]`) would add a patch of background: left out."""
    count = len(work(row)["selected"])
    methods = methods or []
    keep = [0] + [i for i in range(1, count) if i >= len(methods) or methods[i] != "ellipse"]
    return np.logical_or.reduce([decode_mask(blob(row, f"mask:{i}")) for i in keep])
