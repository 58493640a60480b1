"""Template instructions whose phrasing depends on the kind of motion: a rise is worded
differently from a move to the side. One template stage per kind, chosen by edit["kind"]."""

from __future__ import annotations

from pipeline.core import schema
from pipeline.core.stage import Resources, Row, Stage
from stages.template_instructions import TemplateInstructionStage


class MotionTemplateStage(Stage):
    name = TemplateInstructionStage.name
    reads = ("edit", "sample_id")
    writes = ("instruction_en", "instruction_zh", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=32)

    def __init__(self, tasks: tuple[str, ...], templates: dict[str, tuple[list[str], list[str]]]):
        self.tasks = tasks
        self.by_kind = {kind: TemplateInstructionStage(tasks, en, zh) for kind, (en, zh) in templates.items()}

    def process_row(self, row: Row) -> Row:
        kind = schema.loads(row["edit"])["kind"]
        if kind not in self.by_kind:
            raise KeyError(f"no instruction templates for motion kind {kind!r}")
        return self.by_kind[kind].process_row(row)
