"""What grounding should look for: the labels the input's annotations name (so a grounding model
refines their boxes), or nothing, which makes it detect every object it can."""

from __future__ import annotations

from pipeline.core.rows import update_work, work
from pipeline.core.stage import Resources, Row, Stage


class GroundingPhrasesStage(Stage):
    name = "grounding_phrases"
    reads = ("work.objects",)
    writes = ("work.phrases",)
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], skip_labels: list[str] = ()):
        self.tasks = tasks
        self.skip_labels = {label.lower() for label in skip_labels}

    def process_row(self, row: Row) -> Row:
        labels = []
        for obj in work(row).get("objects") or []:
            label = obj["label"]
            if label.lower() not in self.skip_labels and label not in labels:
                labels.append(label)
        update_work(row, phrases=labels)
        return row
