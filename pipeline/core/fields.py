"""The row's named fields: every column, `_work` scratchpad key and scratch blob a stage reads or
writes, with what it holds; a check that each read has an earlier writer; and a read-only view
whose missing field names the stage that should have written it.

Names: a column by its name ("mask"); a key of the `_work` JSON scratchpad as "work.<key>"
("work.selected"); a `_blobs` entry as "blob.<name>", one family of per-object blobs as
"blob.<prefix>:*" ("blob.mask:*" is mask:0, mask:1, ...). In a stage's `reads` a trailing "?"
marks a field it uses only when present (it copes without it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from pipeline.core import rows as row_helpers
from pipeline.core.stage import Row, Stage

OPTIONAL = "?"

COLUMNS: dict[str, str] = {
    "sample_id": "stable id: input content, input key, task, edit index",
    "task": "the task id this row belongs to",
    "source_image": "PNG at the working size: the picture before the edit",
    "target_image": "PNG: the picture after the edit",
    "mask": "PNG: where the edit may change pixels (background_change: the background)",
    "depth": "16-bit PNG depth map, from the `depth` blob at the writer",
    "instruction_en": "the English instruction",
    "instruction_zh": "the Chinese instruction",
    "instruction_source": "who wrote instruction_en/zh: mllm (the captioner, or motion's describer) or template",
    "instruction_register": "the register of instruction_en/zh: imperative or descriptive",
    "instructions": "JSON: {source, registers: {imperative: {en, zh}, descriptive: {en, zh}}}",
    "source_caption": "one English line on the source picture, from the captioner (null with templates)",
    "target_caption": "one English line on the target picture, from the captioner (null with templates)",
    "edit": "JSON: what the edit is (object, new value, prompt, template slots, measurements)",
    "source_uri": "where the input came from",
    "source_sha256": "hash of the input's bytes (a video: of its file)",
    "width": "working width of the source",
    "height": "working height of the source",
    "license": "the input's licence",
    "scores": "JSON: gate values and verdicts, gate_score, viescore",
    "judge": "JSON: the judge's record",
    "status": "pending, ok, rejected, error or skipped (pipeline/core/status.py)",
    "reason": "why the row has its status",
    "selected": "kept by selection (set false at the writer)",
    "provenance": "JSON: per stage timings and settings, fallbacks",
    "schema_version": "the shard schema's version (set at the writer)",
    "_shard": "the input shard the row came from",
    "_unit": "one (input, task) pair: what the writer counts",
    "_unit_rows": "how many rows that unit produced",
    "_input": "JSON: the input record (path or bytes, key, kind, annotations)",
}

WORK: dict[str, str] = {
    "objects": "boxes on the input ({label, bbox xywh}): annotations, replaced by grounding",
    "video": "a video input's probe (frames, fps, size)",
    "phrases": "what grounding should look for",
    "selected": "the objects to edit, in order; blob mask:<i> is the mask of selected[i]",
    "tags": "image tags ({label, score}, best first)",
    "seen_objects": "objects the multimodal model listed",
    "edit_choice": "the multimodal model's {object, change_to}",
    "replace_choice": "what subject_replace replaces with what ({object, new, new_zh, by})",
    "depth_metres_per_unit": "scale of the `depth` blob's 16-bit values",
    "texts": "text lines to edit ({text, quad, ...})",
    "text_origin": "where the text lines came from: ocr or rendered_sign",
    "sign": "the rendered sign's placement, when the input had no text",
    "faces": "faces to retouch ({bbox, source, eyes, mouth, position})",
    "motion_frames": "the sampled frames ({index, time}, then foreground summaries)",
}

BLOBS: dict[str, str] = {
    "mask:*": "PNG mask of selected[i]",
    "depth": "16-bit PNG depth map of the source",
    "skin:*": "PNG skin mask of faces[i]",
    "skin": "a portrait candidate's own skin mask",
    "other_objects": "PNG of the other selected objects a replace paste must not cover",
    "frame:*": "PNG of sampled video frame k",
    "fg:*": "PNG foreground mask of sampled frame k",
    "subject:source": "a motion candidate's subject in its source frame",
}

# The hand-offs nothing else names: which stages write each, so a missing one names its writer.
# tests/test_row_fields.py keeps this equal to the stages' own `writes`.
WRITTEN_BY: dict[str, tuple[str, ...]] = {
    "work.objects": ("decode", "florence2_grounding"),
    "work.video": ("decode",),
    "work.phrases": ("grounding_phrases", "face_phrases", "replace_choice"),
    "work.selected": ("select_objects", "background_subject_group", "replace_select"),
    "work.tags": ("tags",),
    "work.seen_objects": ("mllm_choose_edit",),
    "work.edit_choice": ("mllm_choose_edit",),
    "work.replace_choice": ("replace_choice",),
    "work.depth_metres_per_unit": ("zoedepth",),
    "work.texts": ("rapidocr", "florence2_ocr", "text_source"),
    "work.text_origin": ("text_source",),
    "work.sign": ("text_source",),
    "work.faces": ("face_find",),
    "work.motion_frames": ("motion_frames", "motion_foreground"),
    "blob.mask:*": ("grabcut_mask", "sam2_mask"),
    "blob.depth": ("zoedepth",),
    "blob.skin:*": ("portrait_skin",),
    "blob.skin": ("portrait_propose",),
    "blob.other_objects": ("replace_propose",),
    "blob.frame:*": ("motion_frames",),
    "blob.fg:*": ("motion_foreground",),
    "blob.subject:source": ("motion_propose",),
}

FIELDS: dict[str, str] = {
    **COLUMNS,
    **{f"work.{key}": meaning for key, meaning in WORK.items()},
    **{f"blob.{name}": meaning for name, meaning in BLOBS.items()},
}

# what the engine puts on a row before decode (pipeline/engine/ray_plan.py start_rows)
ENGINE_SEED = ("sample_id", "task", "status", "source_uri", "license", "_shard", "_input")


def bare(name: str) -> str:
    """The field a declared read names, without its optional mark."""
    return name[: -len(OPTIONAL)] if name.endswith(OPTIONAL) else name


def is_known(name: str) -> bool:
    return bare(name) in FIELDS


def requiring(reads: tuple[str, ...], *names: str) -> tuple[str, ...]:
    """`reads` with `names` made required: for a stage whose settings turn an optional read
    into one it always makes."""
    return tuple(bare(r) if bare(r) in names else r for r in reads)


def blob_field(blob_name: str) -> str:
    """The field a blob belongs to: "mask:3" -> "blob.mask:*", "depth" -> "blob.depth"."""
    if f"blob.{blob_name}" in FIELDS:
        return f"blob.{blob_name}"
    return f"blob.{blob_name.split(':', 1)[0]}:*"


def unmet_reads(stages: Iterable[Stage], seed: Iterable[str] = ENGINE_SEED) -> list[str]:
    """One line per required read (in stage order) that neither the seed nor an earlier stage
    writes; unknown field names count as unmet."""
    written = set(seed)
    problems = []
    for stage in stages:
        for name in stage.reads:
            if not is_known(name):
                problems.append(f"{stage.name} ({type(stage).__name__}) reads {name!r}, which is not a field in pipeline/core/fields.py")
            elif not name.endswith(OPTIONAL) and name not in written:
                problems.append(f"{stage.name} ({type(stage).__name__}) reads {name!r}, which no earlier stage writes")
        written.update(stage.writes)
    return problems


class MissingField(KeyError):
    """A field a stage needs is not on the row; the message names who should have written it."""

    def __init__(self, name: str, detail: str = ""):
        writers = WRITTEN_BY.get(name)
        who = f"{' or '.join(writers)} should have written it earlier in the recipe" if writers else "no stage wrote it"
        super().__init__(name)
        self.message = f"{name}{f' ({detail})' if detail else ''} is not on the row: {who}"

    def __str__(self) -> str:
        return self.message


class WorkView:
    """The `_work` scratchpad's keys as attributes, read-only: `view.work.selected`."""

    if TYPE_CHECKING:  # the types, for readers and type checkers; values come from __getattr__
        objects: list[dict[str, Any]] | None
        video: dict[str, Any]
        phrases: list[str]
        selected: list[dict[str, Any]]
        tags: list[dict[str, Any]]
        seen_objects: list[str]
        edit_choice: dict[str, str]
        replace_choice: dict[str, Any]
        depth_metres_per_unit: float
        texts: list[dict[str, Any]]
        text_origin: str
        sign: dict[str, Any]
        faces: list[dict[str, Any]]
        motion_frames: list[dict[str, Any]]

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        if key not in WORK:
            raise AttributeError(f"work.{key} is not a declared work key (pipeline/core/fields.py)")
        if key not in self._state:
            raise MissingField(f"work.{key}")
        return self._state[key]

    def get(self, key: str, default: Any = None) -> Any:
        if key not in WORK:
            raise AttributeError(f"work.{key} is not a declared work key (pipeline/core/fields.py)")
        return self._state.get(key, default)


class RowView:
    """A read-only view over a row: `view["mask"]` for a column, `view.work.selected` for a work
    key, `view.blob("mask:0")` for a blob; a missing one raises MissingField naming its writer.
    The work state is read once: take a new view after `update_work`."""

    def __init__(self, row: Row):
        self._row = row
        self.work = WorkView(row_helpers.work(row))

    def __getitem__(self, column: str) -> Any:
        if column not in COLUMNS:
            raise KeyError(f"{column!r} is not a row column (pipeline/core/fields.py)")
        value = self._row.get(column)
        if value is None:
            raise MissingField(column)
        return value

    def get(self, column: str, default: Any = None) -> Any:
        if column not in COLUMNS:
            raise KeyError(f"{column!r} is not a row column (pipeline/core/fields.py)")
        value = self._row.get(column)
        return default if value is None else value

    def blob(self, name: str) -> bytes:
        data = row_helpers.blob(self._row, name)
        if data is None:
            raise MissingField(blob_field(name), name)
        return data
