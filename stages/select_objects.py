"""Pick the objects of an input worth editing, from boxes already on the row (annotations
on the cpu profile, grounding on the gpu profile)."""

from __future__ import annotations

from pipeline.core import schema
from pipeline.core.rows import mark, update_work, work
from pipeline.core.stage import Resources, Row, Stage


class SelectObjectsStage(Stage):
    name = "select_objects"
    reads = ("work.objects", "width", "height")
    writes = ("work.selected", "status", "reason")
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], max_objects: int, min_fraction: float, max_fraction: float, skip_labels: list[str] = ()):
        self.tasks = tasks
        self.skip_labels = {label.lower() for label in skip_labels}
        self.max_objects = max_objects
        self.min_fraction = min_fraction
        self.max_fraction = max_fraction

    def process_row(self, row: Row) -> Row:
        objects = work(row).get("objects")
        if objects is None:
            return mark(row, schema.SKIPPED, f"{self.name}: no object annotated for this input")
        area = float(row["width"] * row["height"])
        usable = [o for o in objects if o["label"].lower() not in self.skip_labels]
        sized = [o for o in usable if self.min_fraction <= o["bbox"][2] * o["bbox"][3] / area <= self.max_fraction]
        if not sized:
            return mark(
                row,
                schema.SKIPPED,
                f"{self.name}: none of {len(objects)} annotated objects is editable here "
                f"({len(objects) - len(usable)} with excluded labels; the rest outside "
                f"{self.min_fraction:.0%}-{self.max_fraction:.0%} of the image)",
            )
        sized.sort(key=lambda o: (-o["bbox"][2] * o["bbox"][3], o["label"]))
        chosen = sized[: self.max_objects]
        for obj in chosen:
            obj["position"] = position_of(obj, objects, row["width"], row["height"])
        update_work(row, selected=chosen)
        return row


def position_of(obj: dict, objects: list[dict], width: int, height: int) -> str | None:
    """Where the object is, when its label alone does not say which one is meant."""
    twins = [o for o in objects if o["label"] == obj["label"]]
    if len(twins) < 2:
        return None
    centre = lambda o: (o["bbox"][0] + o["bbox"][2] / 2, o["bbox"][1] + o["bbox"][3] / 2)  # noqa: E731
    xs = sorted(centre(o)[0] for o in twins)
    cx, cy = centre(obj)
    if xs[-1] - xs[0] > 0.1 * width:
        if cx == xs[0]:
            return "left"
        if cx == xs[-1]:
            return "right"
    ys = sorted(centre(o)[1] for o in twins)
    if cy == ys[0]:
        return "top"
    if cy == ys[-1]:
        return "bottom"
    return "middle"
