"""The row contract: one fixed Arrow schema for every shard, plus the working columns
that only live between stages."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 2  # 2: who wrote the instruction, its registers, the captions

OK, REJECTED, ERROR, SKIPPED = "ok", "rejected", "error", "skipped"
# Internal: a row still on its way through the stages, with no verdict yet.
PENDING = "pending"
FINAL_STATUSES = (OK, REJECTED, ERROR, SKIPPED)
CANDIDATE_STATUSES = (OK, REJECTED)  # rows in candidates/, always with both images
NO_CANDIDATE_STATUSES = (ERROR, SKIPPED)  # rows in errors/

IMAGE_COLUMNS = ("source_image", "target_image", "mask", "depth")
JSON_COLUMNS = ("edit", "instructions", "scores", "judge", "provenance")

IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])

ROW_FIELDS = [
    pa.field("sample_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("source_image", IMAGE_TYPE),
    pa.field("target_image", IMAGE_TYPE),
    pa.field("mask", IMAGE_TYPE),
    pa.field("depth", IMAGE_TYPE),  # 16-bit PNG where a depth model ran; metres per unit in provenance
    pa.field("instruction_en", pa.string()),
    pa.field("instruction_zh", pa.string()),
    pa.field("instruction_source", pa.string()),  # mllm or template (filters/caption)
    pa.field("instruction_register", pa.string()),  # the register of instruction_en/zh: imperative or descriptive
    pa.field("instructions", pa.string()),  # JSON: every register's {en, zh}, and who wrote them
    pa.field("source_caption", pa.string()),  # one line on the source picture (English; null for templates)
    pa.field("target_caption", pa.string()),  # one line on the target picture
    pa.field("edit", pa.string()),
    pa.field("source_uri", pa.string()),
    pa.field("source_sha256", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("license", pa.string()),
    pa.field("scores", pa.string()),
    pa.field("judge", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("selected", pa.bool_()),
    pa.field("provenance", pa.string()),
    pa.field("schema_version", pa.int16()),
]

# Between stages rows also carry where they came from and scratch state; the shard writer
# drops these columns.
WORK_FIELDS = [
    pa.field("_shard", pa.int32()),
    pa.field("_unit", pa.string()),  # one (input, task) pair: the unit the writer counts
    pa.field("_unit_rows", pa.int32()),  # rows that unit produced in total
    pa.field("_input", pa.string()),  # JSON: where to read the input, its annotations
    pa.field("_work", pa.string()),  # JSON: scratch state handed from stage to stage
    # named binary scratch (per-object masks, depth maps) that is not yet a column of its own
    pa.field("_blobs", pa.list_(pa.struct([("name", pa.string()), ("data", pa.binary())]))),
]


def _hf_features() -> dict[str, Any]:
    features: dict[str, Any] = {}
    for field in ROW_FIELDS:
        if field.name in IMAGE_COLUMNS:
            features[field.name] = {"_type": "Image"}
        elif pa.types.is_boolean(field.type):
            features[field.name] = {"dtype": "bool", "_type": "Value"}
        elif pa.types.is_integer(field.type):
            features[field.name] = {"dtype": str(field.type), "_type": "Value"}
        else:
            features[field.name] = {"dtype": "string", "_type": "Value"}
    return features


# `datasets` decodes struct<bytes, path> columns as images only when this metadata is present.
SCHEMA_METADATA = {
    b"huggingface": json.dumps({"info": {"features": _hf_features()}}).encode(),
    b"schema_version": str(SCHEMA_VERSION).encode(),
}

ROW_SCHEMA = pa.schema(ROW_FIELDS, metadata=SCHEMA_METADATA)
WORK_SCHEMA = pa.schema(
    [f.with_nullable(True) for f in ROW_FIELDS] + WORK_FIELDS,
)
ROW_COLUMNS = tuple(f.name for f in ROW_FIELDS)


def image_value(data: bytes | None, path: str | None = None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {"bytes": data, "path": path}


def image_bytes(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else value.get("bytes")


def sample_id(source_sha256: str, source_key: str, task: str, edit_index: int) -> str:
    """Stable across runs: the source content, where it sits in the input, the task, and which
    edit of that input this is."""
    text = f"{source_sha256}|{source_key}|{task}|{edit_index}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def loads(value: str | None) -> dict[str, Any]:
    return json.loads(value) if value else {}


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=_jsonable)


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays reach JSON from image statistics
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema = WORK_SCHEMA) -> pa.Table:
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def to_output_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as written to a shard: the fixed columns only, schema metadata attached."""
    for row in rows:
        row["schema_version"] = SCHEMA_VERSION
        if row.get("selected") is None:
            row["selected"] = False
    return rows_to_table(rows, ROW_SCHEMA)
