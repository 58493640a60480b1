"""The layout of a run directory, and the shard plan decided before Ray starts."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


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

    def write_plan(self, records: list[dict[str, Any]], shard_size: int, meta: dict[str, Any]) -> dict[str, Any]:
        shards = []
        for shard, start in enumerate(range(0, len(records), shard_size)):
            chunk = records[start : start + shard_size]
            lines = "".join(json.dumps({**rec, "index": start + i}, ensure_ascii=False) + "\n" for i, rec in enumerate(chunk))
            atomic_write(self.shard_inputs(shard), lines.encode())
            shards.append({"shard": shard, "inputs": len(chunk)})
        plan = {**meta, "inputs": len(records), "shard_size": shard_size, "shards": shards}
        # written last: a plan folder without plan.json is an unfinished plan and is redone
        atomic_write(self.plan_file, json.dumps(plan, indent=1).encode())
        return plan

    def read_shard_inputs(self, shard: int) -> Iterator[dict[str, Any]]:
        with open(self.shard_inputs(shard)) as handle:
            for line in handle:
                yield json.loads(line)

    def commit_records(self) -> list[dict[str, Any]]:
        if not self.commits.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.commits.glob("shard-*.json"))]
