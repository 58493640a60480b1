"""`export`: the run's selected rows (or a re-ranked share of its candidates) as a dataset folder
of one schema: Parquet or WebDataset shards, a dataset card, and a checksummed manifest. The run
and the export folder are each local or on a store by URI (`RunStore`); each file is written
whole (renamed, or one PUT) and the manifest last, so a folder without it is an unfinished export."""

from __future__ import annotations

import io
import json
import math
import tarfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.run_dir import RunDir, RunStore, StoredFile
from pipeline.core.run_store import read_parquet
from pipeline.postrun import dataset_card, export_files, preference
from pipeline.postrun.dedup import HashIndex, folder_hashes
from pipeline.postrun.export_files import (
    ExportError,
    license_known,
    parquet_shard_names,
)
from pipeline.postrun.judge_overlay import JudgeOverlay, apply_to_row, load_overlay
from pipeline.postrun.selection import (
    candidate_files,
    default_settings,
    done_file,
    hq_files,
    selection_file,
    wanted_batches,
)
from pipeline.postrun.selection_rules import keep_count

FORMATS = ("parquet", "webdataset", "preference")
__all__ = ["FORMATS", "ExportError", "choose", "export_run", "license_known", "sample_json"]


# --- choosing rows ---------------------------------------------------------------------------


def choose(
    records: list[dict[str, Any]],
    keep_ratio: float | None,
    min_o: float | None,
    per_task: int | None,
    benchmark: HashIndex | None,
    include_unknown_license: bool,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The selection records to export, best first per task, and how many each filter dropped."""
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_task[rec["task"]].append(rec)
    dropped: dict[str, int] = defaultdict(int)
    chosen: list[dict[str, Any]] = []
    for task in sorted(by_task):
        rows = by_task[task]
        ranked = sorted((r for r in rows if r["rank"] is not None), key=lambda r: r["rank"])
        if keep_ratio is None:
            picked = [r for r in ranked if r["selected"]]
        else:
            # relative to the task's candidates, as the selection phase counts them
            picked = ranked[: keep_count(keep_ratio, len(rows), len(ranked))]
        kept = []
        for rec in picked:
            if not include_unknown_license and not license_known(rec["license"]):
                dropped["unknown license"] += 1
            elif min_o is not None and rec["o"] is not None and rec["o"] < min_o:
                dropped["below min O"] += 1
            elif benchmark is not None and benchmark.near(rec["source_phash"]):
                dropped["near-duplicate of a benchmark image"] += 1
            else:
                kept.append(rec)
        if per_task is not None and len(kept) > per_task:
            dropped["over the per-task limit"] += len(kept) - per_task
            kept = kept[:per_task]
        chosen += kept
    return chosen, dict(dropped)


# --- writing ---------------------------------------------------------------------------------


def _parquet_shard(rows: list[dict[str, Any]]) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(schema.to_output_table(rows), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _tar_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644  # fixed metadata: the same rows give the same bytes
    tar.addfile(info, io.BytesIO(data))


def sample_json(row: dict[str, Any]) -> dict[str, Any]:
    """Every non-image column, with the JSON-string columns as objects."""
    out = {}
    for name in schema.ROW_COLUMNS:
        if name in schema.IMAGE_COLUMNS:
            continue
        out[name] = schema.loads(row.get(name)) if name in schema.JSON_COLUMNS else row.get(name)
    return out


def _webdataset_shard(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for row in rows:
            key = row["sample_id"]
            for column, suffix in (("source_image", "source"), ("target_image", "target"), ("mask", "mask"), ("depth", "depth")):
                data = schema.image_bytes(row.get(column))
                if data:
                    _tar_member(tar, f"{key}.{suffix}.png", data)
            _tar_member(tar, f"{key}.json", json.dumps(sample_json(row), ensure_ascii=False, sort_keys=True).encode())
    return buf.getvalue()


def _shard_names(fmt: str, count: int) -> list[str]:
    if fmt == "parquet":
        return parquet_shard_names(count)
    return [f"data/train-{i:06d}.tar" for i in range(count)]


def _stream_rows(files: list[Path | StoredFile], wanted: dict[str, dict[str, Any]], batch_rows: int, overlay: JudgeOverlay | None = None):
    """The wanted rows; candidates' judgements from the judge overlay (hq/ rows already have them)."""
    for batch, keep, entries in wanted_batches(files, wanted, batch_rows, overlay):
        yield from (apply_to_row(row, entries) for row in batch.take(pa.array(keep)).to_pylist())


def export_run(
    run_dir: RunDir | Path | str,
    to_dir: Path | str,
    fmt: str = "parquet",
    keep_ratio: float | None = None,
    min_o: float | None = None,
    per_task: int | None = None,
    exclude_benchmark: Path | None = None,
    include_unknown_license: bool = False,
) -> dict[str, Any]:
    """Write the export; returns its manifest (counts per task, what each filter dropped, files)."""
    run = RunDir(run_dir)
    to = RunStore(to_dir, run.store.io)  # an export beside the run, on the same store, is reached the same way
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "preference":
        # pairs are not ranked triplets: the re-ranking filters have nothing to rank
        for flag, value in (("--keep-ratio", keep_ratio), ("--min-o", min_o), ("--per-task", per_task)):
            if value is not None:
                raise ExportError(f"{flag} does not apply to --format preference")
        return preference.export_pairs(run, to, exclude_benchmark, include_unknown_license)
    if keep_ratio is not None and not 0 < keep_ratio <= 1:
        raise ExportError(f"--keep-ratio must be in (0, 1], got {keep_ratio}")
    if per_task is not None and per_task < 1:
        raise ExportError(f"--per-task must be at least 1, got {per_task}")
    if not done_file(run).exists():
        raise ExportError(f"{run.root} has no finished selection; run `python -m pipeline select {run.root}` first")
    done = json.loads(done_file(run).read_text())
    settings = {**default_settings(), **done.get("settings", {})}

    benchmark = None
    if exclude_benchmark is not None:
        if not Path(exclude_benchmark).is_dir():
            raise ExportError(f"--exclude-benchmark: {exclude_benchmark} is not a folder")
        benchmark = HashIndex(int(settings["benchmark_distance"]))
        for i, value in enumerate(folder_hashes(Path(exclude_benchmark))):
            benchmark.add(str(i), value)

    records = read_parquet(selection_file(run)).to_pylist()
    chosen, dropped = choose(records, keep_ratio, min_o, per_task, benchmark, include_unknown_license)
    wanted = {rec["sample_id"]: rec for rec in chosen}
    if not wanted:
        raise ExportError(f"nothing to export: the selection holds no row that passes the filters (dropped: {dropped or 'none'})")

    # the run's own selection lives in hq/; a re-ranked share may reach beyond it
    sources = hq_files(run, done) if keep_ratio is None else candidate_files(run)
    batch_rows = int(settings["read_batch_rows"])
    shard_rows = int(settings["hq_shard_rows"])
    count = max(1, math.ceil(len(wanted) / shard_rows))
    names = _shard_names(fmt, count)
    encode = _parquet_shard if fmt == "parquet" else _webdataset_shard

    export_files.prepare_folder(to)
    summary = dataset_card.new_summary()
    files: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    seen = 0

    def flush() -> None:
        data = encode(pending)
        name = names[len(files)]
        files.append(export_files.write_file(to, name, data, rows=len(pending)))
        pending.clear()

    overlay = load_overlay(run) if keep_ratio is not None else None
    for row in _stream_rows(sources, wanted, batch_rows, overlay):
        row["selected"] = bool(wanted[row["sample_id"]]["selected"])
        dataset_card.summarise_rows([row], summary)
        pending.append(row)
        seen += 1
        if len(pending) >= shard_rows:
            flush()
    if pending:
        flush()
    if seen != len(wanted):
        raise ExportError(f"the selection names {len(wanted)} rows but the run's shards hold {seen} of them; rerun select")

    thresholds = {
        "select.keep_ratio": settings["keep_ratio"],
        "select.min_o": settings["min_o"],
        "select.min_gate_score": settings["min_gate_score"],
        "select.phash_distance": settings["phash_distance"] if settings["dedup_sources"] else "off",
        "select.instruction_dedup": settings["instruction_scope"] if settings["dedup_instructions"] else "off",
        "export.keep_ratio": keep_ratio if keep_ratio is not None else "the run's selection",
        "export.min_o": min_o if min_o is not None else "none",
        "export.per_task": per_task if per_task is not None else "none",
        "export.exclude_benchmark": f"{Path(exclude_benchmark).name} (pHash distance <= {settings['benchmark_distance']})" if benchmark else "none",
        "export.unknown_licenses": "included" if include_unknown_license else "left out",
    }
    card_info = {
        **dataset_card.finish_summary(summary),
        "name": f"{run.name} image-editing triplets",
        "run": run.name,
        "config_hash": export_files.run_config_hash(run),
        "format": fmt,
        "data_files": "data/*.parquet" if fmt == "parquet" else "data/*.tar",
        "data_bytes": sum(f["bytes"] for f in files),
        "rows": seen,
        "thresholds": thresholds,
    }
    manifest = {
        "format": fmt,
        "rows": seen,
        "tasks": card_info["task_counts"],
        "dropped": dropped,
        "thresholds": thresholds,
        "selection": {"settings_hash": done.get("settings_hash"), "done_sha256": export_files.sha256(done_file(run).read_bytes())},
    }
    return export_files.finish(to, card_info, files, manifest)
