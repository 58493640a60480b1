"""The layout of a run directory, and the shard plan decided before Ray starts."""

from __future__ import annotations

import json
import os
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator


def atomic_write(path: Path, data: bytes) -> None:
    """Write under a temporary name, flush to disk, then rename: readers see all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def plan_dir(self) -> Path:
        return self.root / "plan"

    @property
    def plan_file(self) -> Path:
        return self.plan_dir / "plan.json"

    @property
    def candidates(self) -> Path:
        return self.root / "candidates"

    @property
    def errors(self) -> Path:
        return self.root / "errors"

    @property
    def stats(self) -> Path:
        return self.root / "stats"

    @property
    def commits(self) -> Path:
        return self.stats / "shards"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest_file(self) -> Path:
        return self.root / "manifest.json"

    def shard_inputs(self, shard: int) -> Path:
        return self.plan_dir / f"{shard_name(shard)}.jsonl"

    def commit_record(self, shard: int) -> Path:
        return self.commits / f"{shard_name(shard)}.json"

    def is_committed(self, shard: int) -> bool:
        return self.commit_record(shard).exists()

    def read_plan(self) -> dict[str, Any] | None:
        if not self.plan_file.exists():
            return None
        return json.loads(self.plan_file.read_text())

    def write_plan(self, records: Iterable[dict[str, Any]], shard_size: int, meta: dict[str, Any]) -> dict[str, Any]:
        """Number the records and write them to shard files as each shard fills: `records` may be
        a stream of millions, and only one shard's worth is held at a time."""
        for stale in self.plan_dir.glob("shard-*.jsonl"):  # an interrupted plan's, if any
            stale.unlink()
        self.plan_dir.mkdir(parents=True, exist_ok=True)
        counts = array("I")  # inputs per shard: 4 bytes a shard
        lines: list[str] = []
        index = 0
        for rec in records:
            lines.append(json.dumps({**rec, "index": index}, ensure_ascii=False) + "\n")
            index += 1
            if len(lines) == shard_size:
                self._write_shard_inputs(len(counts), lines)
                counts.append(len(lines))
                lines = []
        if lines:
            self._write_shard_inputs(len(counts), lines)
            counts.append(len(lines))
        # one flush of everything written instead of one fsync per shard file (a million inputs
        # make 62,500 of them): the shard files are on disk before plan.json says they count
        os.sync()
        shards = [{"shard": shard, "inputs": n} for shard, n in enumerate(counts)]
        plan = {**meta, "inputs": index, "shard_size": shard_size, "shards": shards}
        # written last: a plan folder without plan.json is an unfinished plan and is redone
        atomic_write(self.plan_file, json.dumps(plan, indent=1).encode())
        return plan

    def _write_shard_inputs(self, shard: int, lines: list[str]) -> None:
        with open(self.shard_inputs(shard), "w", encoding="utf-8") as handle:
            handle.writelines(lines)

    def read_shard_inputs(self, shard: int) -> Iterator[dict[str, Any]]:
        with open(self.shard_inputs(shard), encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def commit_records(self) -> list[dict[str, Any]]:
        if not self.commits.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.commits.glob("shard-*.json"))]
