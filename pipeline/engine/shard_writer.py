"""Collects finished rows per input shard and commits each shard once all its units are in:
its Parquet files, then the completion record, written last, which names them.

On a local folder a file is written under a temporary name and renamed. An object store has no
rename, but a PUT is all or nothing: there each file gets a name of its own per attempt
(`candidates/shard-00001.<attempt>.parquet`), so a killed or failed attempt never overwrites or
passes for a committed file; what it leaves, no record names (`RunDir.orphan_files`)."""

from __future__ import annotations

import errno
import hashlib
import json
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.run_dir import RunDir, commit_record_name, shard_name

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


def _write_parquet(run: RunDir, rel: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    table = schema.to_output_table(rows)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    run.store.write(rel, data)
    return {"path": rel, "rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def shard_file_name(folder: str, shard: int, attempt: str | None) -> str:
    """`folder/shard-NNNNN.parquet`, or with the attempt in the name where there is no rename."""
    return f"{folder}/{shard_name(shard)}{'.' + attempt if attempt else ''}.parquet"


def _row_seconds(row: dict[str, Any], key: str) -> float:
    """The row's share of its stages' time (`seconds`: wall, `cpu_seconds`: CPU)."""
    stages = schema.loads(row.get("provenance")).get("stages", {})
    return sum(float(info.get(key, 0.0)) for info in stages.values())


class ShardWriter:
    """Not thread-safe; one instance sees every row of the shards it is given."""

    def __init__(self, run: RunDir | str | Path, units_per_shard: dict[int, int]):
        self.run = run if isinstance(run, RunDir) else RunDir(run)
        self.units_per_shard = {int(k): int(v) for k, v in units_per_shard.items()}
        # shard -> unit -> sample_id -> row; keyed by sample id so a retried task adds nothing twice
        self.buffers: dict[int, dict[str, dict[str, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
        self.unit_rows: dict[int, dict[str, int]] = defaultdict(dict)
        self.done_units: dict[int, set[str]] = defaultdict(set)
        self.known_committed: dict[int, bool] = {}

    def expect(self, units_per_shard: dict[int, int]) -> None:
        """Shards planned after the writer started (the listing goes on while the run does):
        told before any of their rows can arrive."""
        self.units_per_shard.update({int(k): int(v) for k, v in units_per_shard.items()})

    def add(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        progress: dict[int, dict[str, Any]] = {}
        for row in rows:
            shard, unit = int(row["_shard"]), row["_unit"]
            if shard not in self.units_per_shard or self._committed(shard):
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

    def _committed(self, shard: int) -> bool:
        """Asked of the run once per shard (on a store every question is a request): only this
        writer commits the shard, so after that its own commit is the only change."""
        if shard not in self.known_committed:
            self.known_committed[shard] = self.run.is_committed(shard)
        return self.known_committed[shard]

    def _check_run_there(self) -> None:
        # writing would silently recreate a deleted run folder (on a store: a deleted run's plan)
        there = self.run.plan_started() if self.run.store.remote else self.run.root.is_dir()
        if not there:
            raise FileNotFoundError(errno.ENOENT, "the run folder is gone", str(self.run.root))

    def commit(self, shard: int) -> int:
        self._check_run_there()
        rows = [_finalise(r) for unit in self.buffers.pop(shard).values() for r in unit.values()]
        self.unit_rows.pop(shard, None)
        self.done_units.pop(shard, None)
        rows.sort(key=lambda r: (r["task"], r["_unit"], r["sample_id"]))
        attempt = uuid.uuid4().hex[:12] if self.run.store.remote else None
        files = []
        for folder, statuses in (("candidates", schema.CANDIDATE_STATUSES), ("errors", schema.NO_CANDIDATE_STATUSES)):
            part = [r for r in rows if r["status"] in statuses]
            if part:
                files.append(_write_parquet(self.run, shard_file_name(folder, shard, attempt), part))
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
        self.run.store.write(commit_record_name(shard), json.dumps(record, indent=1).encode())
        self.known_committed[shard] = True
        return sum(1 for r in rows if r["status"] in schema.CANDIDATE_STATUSES)

    def open_shards(self) -> list[int]:
        return sorted(self.buffers)
