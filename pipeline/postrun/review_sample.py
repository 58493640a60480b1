"""Which candidate rows people review: N rows spread evenly over the tasks and, within a task, over
ok and rejected (so reviewers see both what the gates pass and what they stop), reproducible from
a seed. Written to RUN/review/sample.json, which the review server checks verdicts against. The
rows are the run's committed candidates, read through its store."""

from __future__ import annotations

import hashlib
import json
from itertools import zip_longest
from pathlib import Path
from typing import Any

from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.core.run_store import read_parquet
from pipeline.postrun.verdicts import Run, review_dir

STATUSES = ("ok", "rejected")


def _draw(seed: int, sample_id: str) -> str:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).hexdigest()


def _candidates(run: RunDir) -> list[dict[str, str]]:
    rows = []
    for rel in run.committed_files("candidates"):
        rows += read_parquet(run.store.file(rel), columns=["sample_id", "task", "status"]).to_pylist()
    return rows


def choose_sample(run: Run, size: int, seed: int, tasks: list[str] | None = None) -> list[dict[str, str]]:
    """Up to `size` candidate rows ({sample_id, task, status}), ordered by task then by the draw.
    Each task's rows alternate ok and rejected in the seed's order, and the tasks take turns, so
    every task gets its share and each share is half ok, half rejected where the run has both."""
    by_task: dict[str, dict[str, list[dict[str, str]]]] = {}
    for row in _candidates(RunDir(run)):
        if tasks is None or row["task"] in tasks:
            by_task.setdefault(row["task"], {}).setdefault(row["status"], []).append(row)
    queues = []
    for task in sorted(by_task):
        groups = [sorted(by_task[task].get(s, []), key=lambda r: _draw(seed, r["sample_id"])) for s in STATUSES]
        queues.append([r for pair in zip_longest(*groups) for r in pair if r is not None])
    picked = [r for turn in zip_longest(*queues) for r in turn if r is not None][: max(size, 0)]
    return sorted(picked, key=lambda r: (r["task"], _draw(seed, r["sample_id"])))


def sample_file(run: Run):
    return review_dir(run) / "sample.json"


def write_sample(folder: Path, run_id: str, seed: int, rows: list[dict[str, str]]) -> Path:
    """sample.json in the folder the page is drawn in (the run's review/ folder on a local run)."""
    path = Path(folder) / "sample.json"
    body = {"run": run_id, "seed": seed, "size": len(rows), "samples": rows}
    atomic_write(path, json.dumps(body, indent=1).encode())
    return path


def read_sample(run: Run) -> dict[str, Any]:
    return json.loads(sample_file(run).read_text())
