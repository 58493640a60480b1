"""Which object to replace and with what, on the model path: the multimodal model's choice when it
holds up, else the replacement table applied to the input's annotated objects or its tags; then
the grounded box of that object.

The model's reply has already passed its JSON schema (stages/qwen2_5_vl.py); here it must also
make sense as a replacement: an editable object of a usable size, and a stand-in that names a
different kind of thing."""

from __future__ import annotations

import random
from typing import Any

from pipeline.core import schema
from pipeline.core.rows import (
    mark,
    record_fallback,
    record_stage,
    unit_identity,
    update_work,
    work,
)
from pipeline.core.stage import Resources, Row, Stage
from stages.select_objects import position_of
from tasks.replace.vocabulary import (
    REPLACEMENTS,
    bare_noun,
    noun_zh,
    replacement_problem,
)


def box_fraction(obj: dict[str, Any], width: int, height: int) -> float:
    return obj["bbox"][2] * obj["bbox"][3] / float(width * height)


def editable_objects(objects: list[dict] | None, skip: set[str], min_fraction: float, max_fraction: float, width: int, height: int) -> list[dict]:
    """Objects of a label that may be replaced and a usable size, largest first."""
    usable = [
        o for o in objects or []
        if bare_noun(o["label"]) not in skip and min_fraction <= box_fraction(o, width, height) <= max_fraction
    ]
    return sorted(usable, key=lambda o: (-o["bbox"][2] * o["bbox"][3], o["label"]))


def model_choice_problem(choice: dict | None, objects: list[dict] | None, editable: list[dict], skip: set[str]) -> str | None:
    """Why the model's {object, change_to} cannot be used (None when it can)."""
    if not choice:
        return "the model gave no usable choice"
    old = bare_noun(choice["object"])
    if old in skip:
        return f"'{choice['object']}' is a label this task does not replace"
    annotated = {bare_noun(o["label"]) for o in objects or []}
    # an object the annotations know must have a box of a usable size; one they do not know is
    # left to grounding
    if old in annotated and old not in {bare_noun(o["label"]) for o in editable}:
        return f"every annotated '{choice['object']}' is too small or too large to replace"
    return replacement_problem(choice["change_to"], choice["object"])


def table_choice(editable: list[dict], tags: list[dict], skip: set[str], rng: random.Random) -> dict | None:
    """The largest editable annotated object the table knows, else the best-scored tag it knows,
    with one of its stand-ins."""
    labels = [bare_noun(o["label"]) for o in editable]
    labels += [bare_noun(t["label"]) for t in sorted(tags, key=lambda t: -t["score"]) if bare_noun(t["label"]) not in skip]
    for label in labels:
        if label in REPLACEMENTS:
            return {"object": label, "new": rng.choice(REPLACEMENTS[label])}
    return None


def choice_rng(row: Row, seed: int) -> random.Random:
    return random.Random(f"{seed}|{unit_identity(row)}|replace_choice")


class ReplaceChoiceStage(Stage):
    """Writes `replace_choice` ({object, new, new_zh, by}) and the grounding phrase for it."""

    name = "replace_choice"
    reads = ("work.objects", "work.edit_choice?", "work.tags", "width", "height", "source_sha256", "_input", "task")
    writes = ("work.replace_choice", "work.phrases", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], skip_labels: list[str], min_fraction: float, max_fraction: float, seed: int):
        self.tasks = tasks
        self.skip = {bare_noun(label) for label in skip_labels}
        self.min_fraction, self.max_fraction = min_fraction, max_fraction
        self.seed = seed

    def process_row(self, row: Row) -> Row:
        state = work(row)
        objects = state.get("objects")
        editable = editable_objects(objects, self.skip, self.min_fraction, self.max_fraction, row["width"], row["height"])
        model = state.get("edit_choice")
        problem = model_choice_problem(model, objects, editable, self.skip)
        if problem is None:
            choice = {"object": bare_noun(model["object"]), "new": bare_noun(model["change_to"]), "by": "mllm"}
        else:
            picked = table_choice(editable, state.get("tags") or [], self.skip, choice_rng(row, self.seed))
            if picked is None:
                return mark(row, schema.SKIPPED, f"{self.name}: {problem}; and no annotated or tagged object has a stand-in in the table")
            choice = {**picked, "by": "table"}
            record_fallback(row, self.name, f"{problem}; used the replacement table: {choice['object']} -> {choice['new']}")
        choice["new_zh"] = noun_zh(choice["new"])
        update_work(row, replace_choice=choice, phrases=[choice["object"]])
        record_stage(row, self.name, chosen_by=choice["by"], rejected=problem, object=choice["object"], new=choice["new"])
        return row


class ChosenObjectSelectStage(Stage):
    """The largest box of the chosen object among those grounding (or the annotations) gave."""

    name = "replace_select"
    reads = ("work.replace_choice", "work.objects", "width", "height")
    writes = ("work.selected", "status", "reason")
    resources = Resources(num_cpus=0.1, batch_size=16)

    def __init__(self, tasks: tuple[str, ...], min_fraction: float, max_fraction: float):
        self.tasks = tasks
        self.min_fraction, self.max_fraction = min_fraction, max_fraction

    def process_row(self, row: Row) -> Row:
        state = work(row)
        wanted = state["replace_choice"]["object"]
        objects = state.get("objects") or []
        same = [o for o in objects if bare_noun(o["label"]) == wanted]
        sized = editable_objects(same, set(), self.min_fraction, self.max_fraction, row["width"], row["height"])
        if not sized:
            return mark(row, schema.SKIPPED, f"{self.name}: no box of a usable size for '{wanted}' ({len(same)} found)")
        chosen = dict(sized[0])
        chosen["position"] = position_of(chosen, objects, row["width"], row["height"])
        update_work(row, selected=[chosen])
        return row
