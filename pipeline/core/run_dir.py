"""The layout of a run directory, and the shard plan decided before Ray starts."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator


def atomic_write(path: Path, data: bytes) -> None:
    """Write under a temporary name, flush to disk, then rename: readers see all or nothing. On
    failure (disk full, permission denied) the temporary file is removed, so nothing half-written
    is left to look like work, and the OSError names `path`, not the temporary name."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


PLAN_FILE_INPUTS = 4096  # inputs per plan file, in whole shards: a million inputs make 245 files, not 62,500


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def _plan_json(plan: dict[str, Any]) -> str:
    """plan.json readable, one shard a line: json's indented encoder is pure Python and builds
    ten small strings per shard (62,500 shards: about 40 MB at once)."""
    parts = [f" {json.dumps(k)}: " + json.dumps(v, indent=1).replace("\n", "\n ") for k, v in plan.items() if k != "shards"]
    shards = ",\n  ".join(json.dumps(s) for s in plan["shards"])
    parts.append(' "shards": [' + (f"\n  {shards}\n ]" if shards else "]"))
    return "{\n" + ",\n".join(parts) + "\n}\n"


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
        """Where a plan from before the files of whole shards kept a shard's inputs."""
        return self.plan_dir / f"{shard_name(shard)}.jsonl"

    def commit_record(self, shard: int) -> Path:
        return self.commits / f"{shard_name(shard)}.json"

    def is_committed(self, shard: int) -> bool:
        return self.commit_record(shard).exists()

    def read_plan(self) -> dict[str, Any] | None:
        if not self.plan_file.exists():
            return None
        return json.loads(self.plan_file.read_text())

    @property
    def plan_layout_file(self) -> Path:
        return self.plan_dir / "layout.json"

    def inputs_file(self, number: int) -> Path:
        return self.plan_dir / f"inputs-{number:05d}.jsonl"

    def write_plan(self, records: Iterable[dict[str, Any]], shard_size: int, meta: dict[str, Any]) -> dict[str, Any]:
        """Number the records and write them as they come, in files of whole shards (about
        PLAN_FILE_INPUTS inputs a file): `records` may be a stream of millions, and only one
        file's worth is held at a time."""
        self.plan_dir.mkdir(parents=True, exist_ok=True)
        for stale in [*self.plan_dir.glob("inputs-*.jsonl"), *self.plan_dir.glob("shard-*.jsonl")]:  # an interrupted plan's
            stale.unlink()
        per_file = max(1, PLAN_FILE_INPUTS // shard_size)
        lines: list[str] = []
        index = files = 0
        for rec in records:
            lines.append(json.dumps({**rec, "index": index}, ensure_ascii=False) + "\n")
            index += 1
            if len(lines) == per_file * shard_size:
                self._write_inputs(files, lines)
                files, lines = files + 1, []
        if lines:
            self._write_inputs(files, lines)
        count = -(-index // shard_size)
        shards = [{"shard": shard, "inputs": min(shard_size, index - shard * shard_size)} for shard in range(count)]
        layout = {"shard_size": shard_size, "shards_per_file": per_file}
        atomic_write(self.plan_layout_file, json.dumps(layout).encode())
        plan = {**meta, "inputs": index, **layout, "shards": shards}
        # written last: a plan folder without plan.json is an unfinished plan and is redone
        atomic_write(self.plan_file, _plan_json(plan).encode())
        return plan

    def _write_inputs(self, number: int, lines: list[str]) -> None:
        # on disk before plan.json says the plan is whole; plan.json's own write is the commit
        with open(self.inputs_file(number), "w", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def read_shard_inputs(self, shard: int) -> Iterator[dict[str, Any]]:
        """A shard's input records: its lines of the plan file that holds it (a plan from before
        the files of whole shards has one file per shard)."""
        if not self.plan_layout_file.exists():
            with open(self.shard_inputs(shard), encoding="utf-8") as handle:
                yield from (json.loads(line) for line in handle)
            return
        layout = json.loads(self.plan_layout_file.read_text())
        size, per_file = layout["shard_size"], layout["shards_per_file"]
        skip = (shard % per_file) * size
        with open(self.inputs_file(shard // per_file), encoding="utf-8") as handle:
            yield from (json.loads(line) for line in islice(handle, skip, skip + size))

    def commit_records(self) -> list[dict[str, Any]]:
        if not self.commits.exists():
            return []
        return [json.loads(p.read_text()) for p in sorted(self.commits.glob("shard-*.json"))]
