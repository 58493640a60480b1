"""Instructions from bilingual templates: several phrasings per task, slots filled from the
row's `edit`. The phrasing is chosen by a hash of the sample id, so reruns agree."""

from __future__ import annotations

import hashlib
import string

from pipeline.core import schema
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage


def _slots(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


class TemplateInstructionStage(Stage):
    name = "template_instruction"
    reads = ("edit", "sample_id")
    writes = ("instruction_en", "instruction_zh", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=32)

    def __init__(self, tasks: tuple[str, ...], templates_en: list[str], templates_zh: list[str]):
        if not templates_en or not templates_zh:
            raise ValueError("templates in both languages are required")
        self.tasks = tasks
        self.templates_en = templates_en
        self.templates_zh = templates_zh

    def _pick(self, templates: list[str], slots: dict[str, str], key: str) -> tuple[int, str]:
        usable = [i for i, t in enumerate(templates) if _slots(t) <= set(slots)]
        if not usable:
            raise ValueError(f"no template fits the slots {sorted(slots)}")
        index = usable[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(usable)]
        return index, templates[index].format(**slots)

    def process_row(self, row: Row) -> Row:
        edit = schema.loads(row["edit"])
        i_en, row["instruction_en"] = self._pick(self.templates_en, edit["slots_en"], row["sample_id"] + "en")
        i_zh, row["instruction_zh"] = self._pick(self.templates_zh, edit["slots_zh"], row["sample_id"] + "zh")
        record_stage(row, self.name, template_en=i_en, template_zh=i_zh)
        return row
