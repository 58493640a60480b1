"""The selection phase: a separate, repeatable step after generation. It reads the score columns
of candidates/, dedups across the run, keeps per task the best rows up to the keep ratio (the
rules: selection_rules), and writes selection/selection.parquet (one row per candidate, with its
reason), hq/ (copies of the selected rows) and, last, selection/done.json. Candidate shards are
never rewritten; a judge overlay (`rejudge`, judge_overlay.py) replaces their judgements as they
are read, and only a complete one is selected on."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Container, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.run_dir import RunDir, StoredFile, atomic_write, shard_name
from pipeline.core.run_store import file_digest, open_whole, read_parquet

File = Path | StoredFile  # a file as the run's store gives it out
from pipeline.postrun.dedup import source_hashes
from pipeline.postrun.judge_overlay import (
    Entries,
    JudgeOverlay,
    OverlayIncomplete,
    apply_to_rows,
    apply_to_table,
    load_overlay,
)
from pipeline.postrun.selection_rules import decide, funnel

# Part of the completion record's identity: a change to how rows are chosen bumps it, so a rerun
# after such a change selects again instead of keeping the old result.
SELECTION_VERSION = 1
SCORE_COLUMNS = ["sample_id", "task", "status", "scores", "judge", "source_sha256", "instruction_en", "license"]

SELECTION_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field("status", pa.string()),
        pa.field("selected", pa.bool_(), nullable=False),
        pa.field("rank", pa.int32()),  # among the rows that qualified and survived dedup; null otherwise
        pa.field("score", pa.float64()),  # the score ranked on: O or gate_score, per score_kind
        pa.field("score_kind", pa.string()),
        pa.field("o", pa.float64()),
        pa.field("gate_score", pa.float64()),
        pa.field("judge_state", pa.string()),
        pa.field("license", pa.string()),
        pa.field("source_sha256", pa.string()),
        pa.field("source_phash", pa.string()),
        pa.field("dedup_group", pa.string()),
        pa.field("dedup_winner", pa.string()),
        pa.field("reason", pa.string()),
    ]
)


class SelectionError(RuntimeError):
    pass


def selection_dir(run: RunDir) -> File:
    return run.store.file("selection")


def selection_file(run: RunDir) -> File:
    return run.store.file("selection/selection.parquet")


def done_file(run: RunDir) -> File:
    return run.store.file("selection/done.json")


def hq_dir(run: RunDir) -> File:
    return run.store.file("hq")


def hq_files(run: RunDir, done: dict[str, Any]) -> list[File]:
    """The hq/ shards a finished selection wrote, as its completion record names them."""
    return [run.store.file(f["path"]) for f in done.get("files", []) if f["path"].startswith("hq/")]


def default_settings() -> dict[str, Any]:
    return yaml.safe_load((config_mod.CONFIG_DIR / "filters" / "select.yaml").read_text())["select"]


def settings_of(cfg: dict[str, Any]) -> dict[str, Any]:
    settings = {**default_settings(), **(cfg.get("select") or {})}
    if settings["instruction_scope"] not in ("source", "task"):
        raise SelectionError(f"select.instruction_scope: expected source or task, got {settings['instruction_scope']!r}")
    if not 0 < float(settings["keep_ratio"]) <= 1:
        raise SelectionError(f"select.keep_ratio: expected a share in (0, 1], got {settings['keep_ratio']!r}")
    return settings


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# --- reading ---------------------------------------------------------------------------------


def candidate_files(run: RunDir) -> list[File]:
    """The committed candidate shards (`RunDir.committed_files`)."""
    return [run.store.file(rel) for rel in run.committed_files("candidates")]


def _file_sha256(path: File) -> str:
    return file_digest(path)[0]


def input_fingerprint(run: RunDir, files: list[File]) -> list[dict[str, str]]:
    """The candidate shards selection read, with their checksums (from the shard completion
    records where present, which saves reading them)."""
    known = {f["path"]: f["sha256"] for rec in run.commit_records() for f in rec.get("files", [])}
    out = []
    for path in files:
        rel = run.store.rel_of(path)
        out.append({"path": rel, "sha256": known.get(rel) or _file_sha256(path)})
    return out


def read_score_rows(files: list[File], overlay: JudgeOverlay | None = None) -> list[dict[str, Any]]:
    rows = []
    for path in files:
        part = read_parquet(path, SCORE_COLUMNS).to_pylist()
        rows += apply_to_rows(part, overlay.entries(path)) if overlay else part
    return rows


# --- writing ---------------------------------------------------------------------------------


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _write(path: File, table: pa.Table, root: Path | str) -> dict[str, Any]:
    data = _parquet_bytes(table)
    atomic_write(path, data)
    return {"path": str(path.relative_to(root)), "rows": table.num_rows, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


class _HqShards:
    """Numbered hq/ shards of `shard_rows` rows, written a batch at a time (a row group each), so
    memory holds one batch of full rows, never a shard's worth of pictures."""

    def __init__(self, out_dir: File, root: Path | str, shard_rows: int):
        self.out_dir, self.root, self.shard_rows = out_dir, root, shard_rows
        self.written: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = None
        self.open_file = contextlib.ExitStack()
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        while table.num_rows:
            if self.writer is None:
                self.path = self.out_dir / f"{shard_name(len(self.written))}.parquet"
                # readers see a whole shard or none: renamed when done, or one upload on a store
                handle = self.open_file.enter_context(open_whole(self.path))
                self.writer = pq.ParquetWriter(handle, schema.ROW_SCHEMA, compression="zstd")
            part = table.slice(0, self.shard_rows - self.rows)
            self.writer.write_table(part)
            self.rows += part.num_rows
            table = table.slice(part.num_rows)
            if self.rows >= self.shard_rows:
                self.close()

    def close(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        self.open_file.close()
        sha256, size = file_digest(self.path)
        self.written.append({"path": str(self.path.relative_to(self.root)), "rows": self.rows, "sha256": sha256, "bytes": size})
        self.writer, self.rows = None, 0


def _as_selected(batch: pa.RecordBatch, keep: list[int]) -> pa.Table:
    """The kept rows of a candidate batch with `selected` set, in the written schema."""
    table = pa.Table.from_batches([batch.take(pa.array(keep))])
    if table.schema.names == schema.ROW_SCHEMA.names:
        table = table.set_column(table.schema.get_field_index("selected"), "selected", pa.array([True] * table.num_rows))
        try:
            return table.cast(schema.ROW_SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
            pass
    rows = table.to_pylist()  # a shard from an older schema: rebuilt row by row
    for row in rows:
        row["selected"] = True
    return schema.to_output_table(rows)


def wanted_batches(files: list[File], wanted: Container[str], batch_rows: int, overlay: JudgeOverlay | None = None,
                   columns: list[str] | None = None) -> Iterator[tuple[pa.RecordBatch, list[int], Entries]]:
    """The batches of the candidate shards that hold wanted sample ids, streamed a batch at a
    time: each with the indices of those rows and the judge overlay's entries of its shard."""
    for path in files:
        entries = overlay.entries(path) if overlay else {}
        with path.open("rb") as handle:
            for batch in pq.ParquetFile(handle, buffer_size=1 << 20).iter_batches(batch_size=batch_rows, columns=columns):
                keep = [i for i, sid in enumerate(batch.column("sample_id").to_pylist()) if sid in wanted]
                if keep:
                    yield batch, keep, entries


def copy_selected(files: list[File], wanted: set[str], out_dir: File, root: Path | str, shard_rows: int, batch_rows: int,
                  overlay: JudgeOverlay | None = None) -> list[dict[str, Any]]:
    """Full rows of the wanted sample ids, streamed from the candidate shards into numbered
    shards, with `selected` set and the overlay's judgements."""
    sink = _HqShards(out_dir, root, shard_rows)
    for batch, keep, entries in wanted_batches(files, wanted, batch_rows, overlay):
        sink.add(apply_to_table(_as_selected(batch, keep), entries))
    sink.close()
    return sink.written


def hash_sources(files: list[File], batch_rows: int) -> dict[str, dict[str, str]]:
    """`dedup.source_hashes` over the candidate shards: one Ray task per shard where the run's
    Ray is up (decoding every source picture is the selection's one heavy step), else here."""
    ray = sys.modules.get("ray")  # never start Ray for this: `select` on its own runs in-process
    if ray is None or not ray.is_initialized() or len(files) < 2:
        return source_hashes(files, batch_rows)
    task = ray.remote(num_cpus=1)(source_hashes)
    merged: dict[str, dict[str, str]] = {}
    for part in ray.get([task.remote([path], batch_rows) for path in files]):
        merged.update(part)
    return merged


def _outputs_intact(run: RunDir, done: dict[str, Any]) -> bool:
    for item in done.get("files", []):
        path = run.store.file(item["path"])
        if not path.exists() or _file_sha256(path) != item["sha256"]:
            return False
    return True


def merge_funnel(run: RunDir, funnel_by_task: dict[str, Any], summary: dict[str, Any]) -> None:
    manifest = json.loads(run.manifest_file.read_text()) if run.manifest_file.exists() else {}
    if manifest.get("funnel") == funnel_by_task and manifest.get("selection") == summary:
        return
    manifest["funnel"] = funnel_by_task
    manifest["selection"] = summary
    atomic_write(run.manifest_file, json.dumps(manifest, indent=1).encode())


def _check_complete(run: RunDir) -> None:
    plan = run.read_plan()
    if plan is None:
        return
    committed = {rec["shard"] for rec in run.commit_records()}
    pending = [shard for shard, _ in run.shards(plan) if shard not in committed]
    if pending:
        raise SelectionError(f"{len(pending)} shard(s) have not committed yet ({pending[:5]}); finish the run before selecting")


def select_run(run_dir: RunDir | Path | str, cfg: dict[str, Any]) -> dict[str, Any]:
    """Select the run's HQ subset. Returns the funnel and counts; `skipped` is true when a
    completed selection with the same settings over the same candidates was already there."""
    run = RunDir(run_dir)
    settings = settings_of(cfg)
    _check_complete(run)
    overlay = load_overlay(run)
    if overlay is not None:
        try:
            overlay.require_complete()  # a partial overlay would rank two judges' scores together
        except OverlayIncomplete as exc:
            raise SelectionError(str(exc)) from None
    files = candidate_files(run)
    identity = {"version": SELECTION_VERSION, "settings_hash": settings_hash(settings), "inputs": input_fingerprint(run, files),
                "judge_overlay": overlay.fingerprint() if overlay else None}

    done_path = done_file(run)
    if done_path.exists():
        done = json.loads(done_path.read_text())
        if all(done.get(k) == v for k, v in identity.items()) and _outputs_intact(run, done):
            merge_funnel(run, done["funnel"], done["summary"])
            return {**done["summary"], "funnel": done["funnel"], "skipped": True}
        done_path.unlink()  # from here on the old selection is void

    rows = read_score_rows(files, overlay)
    hashes = hash_sources(files, int(settings["read_batch_rows"]))
    records = decide(rows, hashes, settings)
    by_task = funnel(rows, records)

    run.store.remove_folder("hq")
    outputs = [_write(selection_file(run), pa.Table.from_pylist(records, schema=SELECTION_SCHEMA), run.root)]
    wanted = {r["sample_id"] for r in records if r["selected"]}
    outputs += copy_selected(files, wanted, hq_dir(run), run.root, int(settings["hq_shard_rows"]), int(settings["read_batch_rows"]), overlay)
    summary = {
        "candidates": len(records),
        "selected": len(wanted),
        "settings_hash": identity["settings_hash"],
        "done": str(done_path.relative_to(run.root)),
    }
    done = {**identity, "settings": settings, "summary": summary, "funnel": by_task, "files": outputs}
    merge_funnel(run, by_task, summary)
    # the completion record is written last: without it, a rerun redoes the selection
    atomic_write(done_path, json.dumps(done, indent=1, sort_keys=True).encode())
    return {**summary, "funnel": by_task, "skipped": False}
