"""Small helpers every stage uses to read and annotate a row."""

from __future__ import annotations

from typing import Any

from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.stage import Row


def work(row: Row) -> dict[str, Any]:
    return schema.loads(row.get("_work"))


def update_work(row: Row, **values: Any) -> None:
    state = work(row)
    state.update(values)
    row["_work"] = schema.dumps(state)


def provenance(row: Row) -> dict[str, Any]:
    return schema.loads(row.get("provenance"))


def record_stage(row: Row, stage: str, **info: Any) -> None:
    prov = provenance(row)
    prov.setdefault("stages", {}).setdefault(stage, {}).update(info)
    row["provenance"] = schema.dumps(prov)


def record_fallback(row: Row, stage: str, what: str) -> None:
    prov = provenance(row)
    prov.setdefault("fallbacks", []).append({"stage": stage, "what": what})
    row["provenance"] = schema.dumps(prov)


def mark(row: Row, status: str, reason: str) -> Row:
    """Give the row a status and its reason; an illegal change raises (pipeline/core/status.py)."""
    return row_status.move(row, status, reason)


def blob(row: Row, name: str) -> bytes | None:
    for item in row.get("_blobs") or []:
        if item["name"] == name:
            return item["data"]
    return None


def set_blob(row: Row, name: str, data: bytes) -> None:
    kept = [item for item in row.get("_blobs") or [] if item["name"] != name]
    row["_blobs"] = kept + [{"name": name, "data": data}]


def unit_identity(row: Row) -> str:
    """What a row's random draws may depend on: its input's bytes, its path relative to the
    input, and its task. Never the shard, the position in the input list or `--limit`, so the
    same input gets the same edits whatever the run around it (the `_unit` id holds the shard
    and the index: it only counts units)."""
    return f"{row['source_sha256']}|{schema.loads(row['_input'])['key']}|{row['task']}"
