"""The engine's own steps, as stages so that the run's stage list shows them: the split into one
row per (input, task) at the top, the pictures' written form and the shard writer at the bottom. Kept apart from the stage-list
builder so that Ray workers unpickling them import nothing heavy."""

from __future__ import annotations

import hashlib

from pipeline.core import schema
from pipeline.core.image_io import to_png
from pipeline.core.rows import mark
from pipeline.core.stage import Resources, Row, Stage
from pipeline.core.task_names import VIDEO_TASKS


class SplitByTask(Stage):
    """Each input becomes one unit per task (the shard writer counts units); a video meets only
    the video tasks and a still image only the others: the rest are `skipped` here."""

    name = "split_by_task"
    reads = ("_input", "_shard", "status", "source_sha256?")
    writes = ("task", "sample_id", "_unit", "_unit_rows", "status", "reason")
    resources = Resources(num_cpus=0.25, batch_size=8)
    accepts = (schema.PENDING, *schema.FINAL_STATUSES)  # an input decode refused still leaves one row per task

    def __init__(self, tasks: list[str]):
        self.task_ids = list(tasks)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        out = []
        for row in rows:
            record = schema.loads(row["_input"])
            for task in self.task_ids:
                unit = dict(row)
                unit["task"] = task
                unit["_unit"] = f"{row['_shard']}:{record['index']}:{task}"
                unit["_unit_rows"] = 1
                unit["sample_id"] = schema.sample_id(row.get("source_sha256") or "", record["key"], task, -1)
                is_video = record.get("kind") == "video"
                if unit["status"] == schema.PENDING and is_video != (task in VIDEO_TASKS):
                    mark(unit, schema.SKIPPED, f"{task} takes {'videos' if task in VIDEO_TASKS else 'still images'}, this input is {'a video' if is_video else 'an image'}")
                out.append(unit)
        return out


class EncodePng(Stage):
    """A candidate's pictures in their written form. Between stages they travel as NPY
    (`pipeline.core.image_io`); PNG is made here, once per picture, in parallel tasks, so the
    shard writer only writes."""

    name = "png_encode"
    reads = ("status", "source_image?", "target_image?", "mask?")
    writes = ("source_image", "target_image", "mask")
    resources = Resources(num_cpus=0.25, batch_size=8)
    accepts = schema.CANDIDATE_STATUSES  # the writer drops the other rows' pictures

    def process_batch(self, rows: list[Row]) -> list[Row]:
        written: dict[bytes, bytes] = {}  # an input's candidates share one source picture: encoded once
        for row in rows:
            for column in ("source_image", "target_image", "mask"):
                value = row.get(column)
                if value and value.get("bytes"):
                    key = hashlib.sha1(value["bytes"]).digest()
                    if key not in written:
                        written[key] = to_png(value["bytes"])
                    row[column] = {**value, "bytes": written[key]}
        return rows


class WriteShards(Stage):
    """The end of every row: `ray.writers` writer actors, each given every row of its shards
    (by shard number), commit a shard as soon as all its units are in
    (`pipeline.engine.shard_writer`)."""

    name = "write_shards"
    reads = (
        "_shard", "_unit", "_unit_rows", "sample_id", "task", "status", "provenance", "source_image?", "target_image?",
        "blob.depth?",
    )
    writes = ("status", "reason", "depth", "source_image", "target_image", "mask", "selected", "schema_version")
    accepts = (schema.PENDING, *schema.FINAL_STATUSES)

    def __init__(self, writer_cpus: float, writers: int = 1):
        self.resources = Resources(num_cpus=writer_cpus, batch_size=0, concurrency=writers)
