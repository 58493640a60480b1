"""Whether a run's committed shards are still what their completion records say.

A completion record (`stats/shards/shard-NNNNN.json`) lists each file with its rows, bytes and
sha256. The cheap check (`full=False`) compares the size and reads the Parquet footer, which
catches a truncated or missing file; the full check also re-hashes every byte, which catches a
flipped bit inside a file of the right size. A damaged shard counts as not committed: `run`
regenerates it, and the commands that read a run refuse it (`DamagedRun`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.core.run_dir import RunDir, shard_name

CHUNK = 1 << 20


class DamagedRun(Exception):
    """A run folder whose committed files differ from their completion records."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_problem(root: Path, entry: dict[str, Any], full: bool) -> str | None:
    """What is wrong with one file of a completion record, or None."""
    path = root / entry["path"]
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"{entry['path']}: missing"
    except OSError as exc:
        return f"{entry['path']}: cannot be read ({exc.strerror or exc})"
    if entry.get("bytes") is not None and size != entry["bytes"]:
        return f"{entry['path']}: {size} bytes, its completion record says {entry['bytes']}"
    try:
        rows = pq.read_metadata(path).num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others on a damaged footer
        return f"{entry['path']}: not a readable Parquet file ({type(exc).__name__}: {exc})"
    if rows != entry.get("rows", rows):
        return f"{entry['path']}: {rows} rows, its completion record says {entry['rows']}"
    if full and file_sha256(path) != entry["sha256"]:
        return f"{entry['path']}: sha256 differs from its completion record"
    return None


def shard_problems(run: RunDir, record_path: Path, full: bool) -> list[str]:
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        return [f"{record_path.relative_to(run.root)}: unreadable completion record ({exc})"]
    found = [file_problem(run.root, entry, full) for entry in record.get("files", [])]
    return [p for p in found if p]


def damaged_shards(run: RunDir, full: bool = False) -> dict[int, list[str]]:
    """Committed shard -> what is wrong with it, for every damaged one (empty: all intact)."""
    out: dict[int, list[str]] = {}
    if not run.commits.exists():
        return out
    for record_path in sorted(run.commits.glob("shard-*.json")):
        problems = shard_problems(run, record_path, full)
        if problems:
            out[int(record_path.stem.split("-")[1])] = problems
    return out


def uncommit(run: RunDir, shard: int) -> None:
    """Make a damaged shard pending again: the completion record goes first (it is the commit),
    then the shard's files, so no reader globbing `candidates/` meets the damaged one."""
    run.commit_record(shard).unlink(missing_ok=True)
    for folder in (run.candidates, run.errors):
        with contextlib.suppress(OSError):  # one that stays is overwritten by the regenerated shard
            (folder / f"{shard_name(shard)}.parquet").unlink(missing_ok=True)


def require_intact(root: Path, full: bool = True) -> None:
    """Raise DamagedRun, naming the files, when a run folder's committed shards are damaged;
    a folder that is not a run (no completion records) passes."""
    damaged = damaged_shards(RunDir(root), full)
    if damaged:
        lines = [problem for problems in damaged.values() for problem in problems]
        raise DamagedRun(
            f"run {root} has {len(damaged)} damaged shard(s): " + "; ".join(lines[:5]) + ("; ..." if len(lines) > 5 else "")
            + ". Rerun the same `run` command to regenerate them (`status --check` lists every damaged file)"
        )
