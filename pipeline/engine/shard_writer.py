"""Collects finished rows per input shard and commits each shard once all its units are in:
Parquet files under temporary names, renamed, then the completion record, written last."""

from __future__ import annotations

import errno
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.run_dir import RunDir, atomic_write, shard_name

PROGRESS_SCHEMA = pa.schema(
    [
        pa.field("shard", pa.int32()),
        pa.field("units", pa.int32()),  # (input, task) units finished by this batch
        pa.field("rows", pa.int32()),
        pa.field("committed", pa.bool_()),
        pa.field("candidates", pa.int32()),
        pa.field("committed_at", pa.float64()),  # wall clock of the commit: the driver hears of it later
    ]
)


def _finalise(row: dict[str, Any]) -> dict[str, Any]:
    """Settle rows that reached the end without a valid verdict, and keep only what the
    status allows: rows with no candidate carry no images."""
    status = row.get("status")
    if status == schema.PENDING:
        row_status.move(row, schema.ERROR, "pipeline: the row reached the end without a verdict")
    elif status in schema.CANDIDATE_STATUSES and (not row.get("source_image") or not row.get("target_image")):
        row_status.move(row, schema.ERROR, f"pipeline: a {status} row lacks its source or target image")
    for item in row.get("_blobs") or []:
        if item["name"] == "depth":
            row["depth"] = schema.image_value(item["data"])
    if row["status"] in schema.NO_CANDIDATE_STATUSES:
        for column in schema.IMAGE_COLUMNS:
            row[column] = None
    return row


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    table = schema.to_output_table(rows)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    atomic_write(path, data)
    return {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _row_seconds(row: dict[str, Any], key: str) -> float:
    """The row's share of its stages' time (`seconds`: wall, `cpu_seconds`: CPU)."""
    stages = schema.loads(row.get("provenance")).get("stages", {})
    return sum(float(info.get(key, 0.0)) for info in stages.values())


class ShardWriter:
    """Not thread-safe; one instance sees every row of the shards it is given."""

    def __init__(self, run_root: str, units_per_shard: dict[int, int]):
        self.run = RunDir(Path(run_root))
        self.units_per_shard = {int(k): int(v) for k, v in units_per_shard.items()}
        # shard -> unit -> sample_id -> row; keyed by sample id so a retried task adds nothing twice
        self.buffers: dict[int, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
        self.unit_rows: dict[int, dict[str, int]] = defaultdict(dict)
        self.done_units: dict[int, set[str]] = defaultdict(set)

    def add(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        progress: dict[int, dict[str, Any]] = {}
        for row in rows:
            shard, unit = int(row["_shard"]), row["_unit"]
            if shard not in self.units_per_shard or self.run.is_committed(shard):
                continue
            self.buffers[shard][unit][row["sample_id"]] = row
            self.unit_rows[shard][unit] = int(row["_unit_rows"])
            entry = progress.setdefault(shard, {"shard": shard, "units": 0, "rows": 0, "committed": False, "candidates": 0, "committed_at": None})
            entry["rows"] += 1
            if unit not in self.done_units[shard] and len(self.buffers[shard][unit]) >= self.unit_rows[shard][unit]:
                self.done_units[shard].add(unit)
                entry["units"] += 1
        for shard, entry in progress.items():
            if len(self.done_units[shard]) == self.units_per_shard[shard]:
                entry["committed"] = True
                entry["candidates"] = self.commit(shard)
                entry["committed_at"] = time.time()
        return list(progress.values())

    def commit(self, shard: int) -> int:
        if not self.run.root.is_dir():  # writing would silently recreate a deleted run folder
            raise FileNotFoundError(errno.ENOENT, "the run folder is gone", str(self.run.root))
        rows = [_finalise(r) for unit in self.buffers.pop(shard).values() for r in unit.values()]
        self.unit_rows.pop(shard, None)
        self.done_units.pop(shard, None)
        rows.sort(key=lambda r: (r["task"], r["_unit"], r["sample_id"]))
        name = shard_name(shard)
        files = []
        for folder, statuses in ((self.run.candidates, schema.CANDIDATE_STATUSES), (self.run.errors, schema.NO_CANDIDATE_STATUSES)):
            part = [r for r in rows if r["status"] in statuses]
            if part:
                path = folder / f"{name}.parquet"
                files.append({"path": str(path.relative_to(self.run.root)), **_write_parquet(path, part)})
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        seconds: dict[str, float] = defaultdict(float)
        cpu_seconds: dict[str, float] = defaultdict(float)
        inputs: dict[str, int] = defaultdict(int)
        for row in rows:
            counts[row["task"]][row["status"]] += 1
            seconds[row["task"]] += _row_seconds(row, "seconds")
            cpu_seconds[row["task"]] += _row_seconds(row, "cpu_seconds")
        for unit in {(r["task"], r["_unit"]) for r in rows}:
            inputs[unit[0]] += 1
        record = {
            "shard": shard,
            "committed_at": time.time(),
            "units": self.units_per_shard[shard],
            "rows": len(rows),
            "files": files,
            "tasks": {
                t: {"inputs": inputs[t], "counts": dict(c), "seconds": round(seconds[t], 3), "cpu_seconds": round(cpu_seconds[t], 3)}
                for t, c in counts.items()
            },
        }
        # the completion record is the commit: written last
        atomic_write(self.run.commit_record(shard), json.dumps(record, indent=1).encode())
        return sum(1 for r in rows if r["status"] in schema.CANDIDATE_STATUSES)

    def open_shards(self) -> list[int]:
        return sorted(self.buffers)
