"""The run's manifest, rebuilt from the shard completion records, and the summary table."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from pipeline import __version__
from pipeline.core import schema
from pipeline.core.run_dir import RunDir, atomic_write


def build_manifest(run: RunDir, plan: dict[str, Any]) -> dict[str, Any]:
    records = run.commit_records()
    rows: dict[str, int] = defaultdict(int)
    tasks: dict[str, dict[str, int]] = {t: defaultdict(int) for t in plan["tasks"]}
    task_inputs: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    cpu_seconds: dict[str, float] = defaultdict(float)
    files = []
    for record in records:
        for task, info in record["tasks"].items():
            task_inputs[task] += info["inputs"]
            seconds[task] += info["seconds"]
            cpu_seconds[task] += info.get("cpu_seconds", 0.0)  # absent from shards of older versions
            for status, count in info["counts"].items():
                rows[status] += count
                tasks.setdefault(task, defaultdict(int))[status] += count
        files += [{"shard": record["shard"], **f} for f in record["files"]]
    committed = {r["shard"] for r in records}
    pending = [shard for shard, _ in run.shards(plan) if shard not in committed]
    return {
        "pipeline_version": __version__,
        "schema_version": schema.SCHEMA_VERSION,
        "config_hash": plan["config_hash"],
        "profile": plan["profile"],
        "inputs": plan["inputs"],
        "complete": not pending,
        "pending_shards": pending,
        "rows": {s: rows.get(s, 0) for s in schema.FINAL_STATUSES},
        "tasks": {t: {s: c.get(s, 0) for s in schema.FINAL_STATUSES} for t, c in tasks.items()},
        "task_inputs": dict(task_inputs),
        # time in the task's stages, each row's share counted once: wall time summed over
        # parallel workers (it can exceed the run's wall time), and true CPU time
        "task_seconds": {t: round(v, 2) for t, v in seconds.items()},
        "task_cpu_seconds": {t: round(v, 2) for t, v in cpu_seconds.items()},
        "shards": files,
    }


def write_manifest(run: RunDir, manifest: dict[str, Any]) -> None:
    atomic_write(run.manifest_file, json.dumps(manifest, indent=1).encode())


def summary_table(manifest: dict[str, Any]) -> str:
    header = ("task", "inputs", "candidates", "ok", "rejected", "skipped", "errors", "stage s", "cpu s")
    lines = [header]
    for task, counts in manifest["tasks"].items():
        lines.append(
            (
                task,
                str(manifest["task_inputs"].get(task, 0)),
                str(counts["ok"] + counts["rejected"]),
                str(counts["ok"]),
                str(counts["rejected"]),
                str(counts["skipped"]),
                str(counts["error"]),
                f"{manifest['task_seconds'].get(task, 0.0):.1f}",
                f"{manifest.get('task_cpu_seconds', {}).get(task, 0.0):.1f}",
            )
        )
    return text_table(lines)


def text_table(lines: list[tuple[str, ...] | list[str]]) -> str:
    """A header line, a rule and the rest, in columns: the first left-aligned, the others right."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    fmt = lambda line: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))  # noqa: E731
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(lines[0]), rule, *map(fmt, lines[1:])])
