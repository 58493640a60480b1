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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from pipeline.core.run_dir import SHARD_FOLDERS, RunDir, commit_record_name, shard_name

CHUNK = 1 << 20
STORE_THREADS = 16


class DamagedRun(Exception):
    """A run folder whose committed files differ from their completion records."""


def file_sha256(path: Any) -> str:
    """sha256 of a file (a Path, or a StoredFile on a store), read a chunk at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def file_problem(run: RunDir, entry: dict[str, Any], full: bool) -> str | None:
    """What is wrong with one file of a completion record, or None."""
    rel = entry["path"]
    try:
        size = run.store.size(rel)
    except FileNotFoundError:
        return f"{rel}: missing"
    except OSError as exc:
        return f"{rel}: cannot be read ({exc.strerror or exc})"
    if entry.get("bytes") is not None and size != entry["bytes"]:
        return f"{rel}: {size} bytes, its completion record says {entry['bytes']}"
    try:
        with run.store.open(rel) as handle:
            rows = pq.read_metadata(handle).num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError and others on a damaged footer
        return f"{rel}: not a readable Parquet file ({type(exc).__name__}: {exc})"
    if rows != entry.get("rows", rows):
        return f"{rel}: {rows} rows, its completion record says {entry['rows']}"
    if full and file_sha256(run.store.file(rel)) != entry["sha256"]:
        return f"{rel}: sha256 differs from its completion record"
    return None


def shard_problems(run: RunDir, record_name: str, full: bool) -> list[str]:
    try:
        record = json.loads(run.store.read_text(record_name))
    except (OSError, ValueError) as exc:
        return [f"{record_name}: unreadable completion record ({exc})"]
    found = [file_problem(run, entry, full) for entry in record.get("files", [])]
    return [p for p in found if p]


def damaged_shards(run: RunDir, full: bool = False) -> dict[int, list[str]]:
    """Committed shard -> what is wrong with it, for every damaged one (empty: all intact). On a
    store the shards are checked STORE_THREADS at a time: each check is a few requests, and a
    resumed run checks every committed shard."""
    names = run.commit_record_names()
    check = lambda name: shard_problems(run, name, full)  # noqa: E731
    if run.store.remote:
        with ThreadPoolExecutor(STORE_THREADS) as pool:
            found = list(pool.map(check, names))
    else:
        found = [check(name) for name in names]
    return {int(name.rsplit("/", 1)[-1].split(".")[0].split("-")[1]): problems for name, problems in zip(names, found) if problems}


def uncommit(run: RunDir, shard: int) -> None:
    """Make a damaged shard pending again: the completion record goes first (it is the commit),
    then the files it named, so no reader meets the damaged one."""
    try:
        named = [f["path"] for f in json.loads(run.store.read_text(commit_record_name(shard))).get("files", [])]
    except (OSError, ValueError):
        named = []
    run.store.remove(commit_record_name(shard))
    for rel in {*named, *(f"{folder}/{shard_name(shard)}.parquet" for folder in SHARD_FOLDERS)}:
        with contextlib.suppress(OSError):  # one that stays is overwritten, or an orphan a rerun removes
            run.store.remove(rel)


def require_intact(run: RunDir | Path | str, full: bool = True) -> None:
    """Raise DamagedRun, naming the files, when a run folder's committed shards are damaged;
    a folder that is not a run (no completion records) passes."""
    run = RunDir(run)
    damaged = damaged_shards(run, full)
    if damaged:
        lines = [problem for problems in damaged.values() for problem in problems]
        raise DamagedRun(
            f"run {run.root} has {len(damaged)} damaged shard(s): " + "; ".join(lines[:5]) + ("; ..." if len(lines) > 5 else "")
            # without --check a rerun checks only sizes and footers: a same-size change needs the hashes
            + ". Rerun the same `run` command with --check to regenerate them (`status --check` lists every damaged file)"
        )
