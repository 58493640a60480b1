"""`export --format preference`: the pairs of preference_pairs written as Parquet shards whose
image columns `datasets` decodes as images, with the dataset card and the checksummed manifest
every export has. Pairs are found on the candidates' light columns first; then each output
shard's rows are fetched in one pass over the candidates, so memory holds one shard's pictures,
never the run's."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.run_dir import RunDir, RunStore
from pipeline.core.run_store import read_parquet
from pipeline.postrun import dataset_card, export_files
from pipeline.postrun.dedup import HashIndex, folder_hashes, phash
from pipeline.postrun.export_files import ExportError, license_known
from pipeline.postrun.judge_overlay import (
    JudgeOverlay,
    apply_to_row,
    apply_to_rows,
    load_overlay,
)
from pipeline.postrun.preference_pairs import (
    BEST_OF_N,
    LIGHT_COLUMNS,
    ORIGINS,
    SAME_EDIT,
    Pair,
    find_pairs,
    pairwise_record,
)
from pipeline.postrun.selection import (
    candidate_files,
    default_settings,
    done_file,
    selection_file,
    wanted_batches,
)

IMAGE_FIELDS = ("source_image", "chosen_image", "rejected_image")
PAIR_FIELDS = [
    pa.field("pair_id", pa.string(), nullable=False),
    pa.field("task", pa.string(), nullable=False),
    pa.field("origin", pa.string(), nullable=False),  # best_of_n | rejected_same_edit
    pa.field("source_image", schema.IMAGE_TYPE),
    pa.field("instruction_en", pa.string()),
    pa.field("instruction_zh", pa.string()),
    pa.field("chosen_image", schema.IMAGE_TYPE),
    pa.field("rejected_image", schema.IMAGE_TYPE),
    pa.field("chosen_sample_id", pa.string(), nullable=False),
    pa.field("rejected_sample_id", pa.string(), nullable=False),
    pa.field("why", pa.string()),
    pa.field("chosen_scores", pa.string()),  # JSON: gate_score, viescore {sc, pq, o}, pairwise {wins, rank}
    pa.field("rejected_scores", pa.string()),
    pa.field("license", pa.string()),
    pa.field("source_uri", pa.string()),
]
_HF_FEATURES = {f.name: {"_type": "Image"} if f.name in IMAGE_FIELDS else {"dtype": "string", "_type": "Value"} for f in PAIR_FIELDS}
# `datasets` decodes struct<bytes, path> columns as images only when this metadata is present.
PAIR_SCHEMA = pa.schema(PAIR_FIELDS, metadata={b"huggingface": json.dumps({"info": {"features": _HF_FEATURES}}).encode()})
CARD_FEATURES = [{"name": f.name, "dtype": "image" if f.name in IMAGE_FIELDS else "string"} for f in PAIR_FIELDS]
# what a pair row needs from its two candidates, and what the dataset card reads from the chosen one
_ROW_COLUMNS = [c for c in schema.ROW_COLUMNS if c not in ("mask", "depth")]


def kept_ids(run: RunDir, rows: list[dict[str, Any]]) -> tuple[set[str], str]:
    """The rows the run keeps, and by which rule: its selection when it has one, else status ok."""
    if done_file(run).exists():
        table = read_parquet(selection_file(run), ["sample_id", "selected"])
        ids = {sid for sid, sel in zip(table.column("sample_id").to_pylist(), table.column("selected").to_pylist()) if sel}
        return ids, "the run's selection"
    return {r["sample_id"] for r in rows if r.get("status") == schema.OK}, "status ok (the run has no selection)"


def _read_light(files: list[Path], batch_rows: int, overlay: JudgeOverlay | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in files:
        entries = overlay.entries(path) if overlay else {}  # the judge overlay `rejudge` made, where one is in use
        with path.open("rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows * 16, columns=LIGHT_COLUMNS):
                rows += apply_to_rows(batch.to_pylist(), entries)
    return rows


def _iter_rows(files: list[Path], ids: set[str], batch_rows: int, columns: list[str],
               overlay: JudgeOverlay | None = None) -> Iterator[dict[str, Any]]:
    """The candidates named by `ids`, a batch of `batch_rows` decoded at a time; every id must be found."""
    missing = set(ids)
    for batch, keep, entries in wanted_batches(files, ids, batch_rows, overlay if "judge" in columns else None, columns):
        for row in batch.take(pa.array(keep, type=pa.int64())).to_pylist():
            missing.discard(row["sample_id"])
            yield apply_to_row(row, entries)
    if missing:
        raise ExportError(f"the candidates changed while exporting: {sorted(missing)[0]} is gone; export again")


def _fetch(files: list[Path], ids: set[str], batch_rows: int, columns: list[str],
           overlay: JudgeOverlay | None = None) -> dict[str, dict[str, Any]]:
    return {row["sample_id"]: row for row in _iter_rows(files, ids, batch_rows, columns, overlay)}


def _scores(row: dict[str, Any]) -> str:
    scores = schema.loads(row.get("scores"))
    out: dict[str, Any] = {"gate_score": scores.get("gate_score"), "viescore": scores.get("viescore")}
    pairwise = pairwise_record(row)
    if pairwise:
        out["pairwise"] = {"wins": pairwise.get("wins"), "rank": pairwise.get("rank")}
    return schema.dumps(out)


def _image(row: dict[str, Any], column: str) -> dict[str, Any]:
    value = row.get(column)
    if not schema.image_bytes(value):
        raise ExportError(f"candidate {row['sample_id']} has no {column}; the run's candidates are damaged")
    return value  # type: ignore[return-value]


def pair_row(pair: Pair, chosen: dict[str, Any], rejected: dict[str, Any]) -> dict[str, Any]:
    # the instruction is the chosen row's: a best-of-N loser carries the winner's, a same-edit one its own equal text
    return {
        "pair_id": pair.pair_id, "task": pair.task, "origin": pair.origin,
        "source_image": _image(chosen, "source_image"),
        "instruction_en": chosen.get("instruction_en"), "instruction_zh": chosen.get("instruction_zh"),
        "chosen_image": _image(chosen, "target_image"), "rejected_image": _image(rejected, "target_image"),
        "chosen_sample_id": pair.chosen, "rejected_sample_id": pair.rejected, "why": pair.why,
        "chosen_scores": _scores(chosen), "rejected_scores": _scores(rejected),
        "license": chosen.get("license"), "source_uri": chosen.get("source_uri"),
    }


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    table = pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in PAIR_FIELDS}, schema=PAIR_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def _filter(pairs: list[Pair], files: list[Path], benchmark: HashIndex | None, include_unknown_license: bool,
            batch_rows: int) -> tuple[list[Pair], dict[str, int]]:
    dropped: Counter[str] = Counter()
    out = []
    for pair in pairs:
        if include_unknown_license or license_known(pair.license):
            out.append(pair)
        else:
            dropped["unknown license"] += 1
    if benchmark is not None and out:
        # hashed as they stream past: only the verdicts are held, never the pictures
        sources = _iter_rows(files, {p.chosen for p in out}, batch_rows, ["sample_id", "source_image"])
        near = {row["sample_id"] for row in sources if benchmark.near(phash(_image(row, "source_image")["bytes"]))}
        dropped["near-duplicate of a benchmark image"] += sum(p.chosen in near for p in out)
        out = [p for p in out if p.chosen not in near]
    return out, dict(dropped)


def _benchmark(folder: Path | None, distance: int) -> HashIndex | None:
    if folder is None:
        return None
    if not Path(folder).is_dir():
        raise ExportError(f"--exclude-benchmark: {folder} is not a folder")
    index = HashIndex(distance)
    for i, value in enumerate(folder_hashes(Path(folder))):
        index.add(str(i), value)
    return index


def export_pairs(run: RunDir, to: RunStore, exclude_benchmark: Path | None = None, include_unknown_license: bool = False) -> dict[str, Any]:
    """Write the preference export; returns its manifest (pairs per task and origin, what each
    filter dropped, files)."""
    files = candidate_files(run)
    if not files:
        raise ExportError(f"{run.root} has no candidate shards to pair")
    done = json.loads(done_file(run).read_text()) if done_file(run).exists() else {}
    settings = {**default_settings(), **done.get("settings", {})}
    batch_rows, shard_rows = int(settings["read_batch_rows"]), int(settings["hq_shard_rows"])
    benchmark = _benchmark(exclude_benchmark, int(settings["benchmark_distance"]))

    overlay = load_overlay(run)
    light = _read_light(files, batch_rows, overlay)
    kept, kept_by = kept_ids(run, light)
    pairs, dropped = _filter(find_pairs(light, kept), files, benchmark, include_unknown_license, batch_rows)
    del light
    if not pairs:
        raise ExportError(
            "nothing to export: no preference pair (a best-of-N loser whose winner is kept, or a rejected row with the "
            f"source and instruction of a kept row; kept: {kept_by}; dropped: {dropped or 'none'})"
        )

    export_files.prepare_folder(to)
    names = export_files.parquet_shard_names(max(1, math.ceil(len(pairs) / shard_rows)))
    summary = dataset_card.new_summary()
    written: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        part = pairs[index * shard_rows : (index + 1) * shard_rows]
        rows = _fetch(files, {p.chosen for p in part} | {p.rejected for p in part}, batch_rows, _ROW_COLUMNS, overlay)
        out = []
        for pair in part:
            out.append(pair_row(pair, rows[pair.chosen], rows[pair.rejected]))
            dataset_card.summarise_rows([rows[pair.chosen]], summary)  # one count per pair, under its chosen row
        written.append(export_files.write_file(to, name, _parquet(out), rows=len(out)))

    origins = {origin: n for origin in ORIGINS if (n := sum(p.origin == origin for p in pairs))}
    thresholds = {
        "export.format": "preference",
        "export.kept_rows": kept_by,
        "export.exclude_benchmark": f"{Path(exclude_benchmark).name} (pHash distance <= {settings['benchmark_distance']})" if benchmark else "none",
        "export.unknown_licenses": "included" if include_unknown_license else "left out",
    }
    card_info = {
        **dataset_card.finish_summary(summary),
        "name": f"{run.name} image-editing preference pairs",
        "run": run.name,
        "config_hash": export_files.run_config_hash(run),
        "format": "parquet",
        "data_files": "data/*.parquet",
        "data_bytes": sum(f["bytes"] for f in written),
        "rows": len(pairs),
        "thresholds": thresholds,
        "features": CARD_FEATURES,
        "contents": (f"{len(pairs)} preference pairs for instruction-based image editing (source image, English and "
                     "Chinese instruction, a chosen and a rejected edited image, and why the rejected one lost)"),
        "extra_sections": _origin_section(origins),
    }
    manifest = {
        "format": "preference",
        "rows": len(pairs),
        "tasks": card_info["task_counts"],
        "origins": origins,
        "dropped": dropped,
        "thresholds": thresholds,
        "selection": {"settings_hash": done.get("settings_hash"), "done_sha256": export_files.sha256(done_file(run).read_bytes())} if done else None,
    }
    return export_files.finish(to, card_info, written, manifest)


def _origin_section(origins: dict[str, int]) -> list[str]:
    lines = [(BEST_OF_N, "a best-of-N loser against the seed the pairwise judge preferred (kept by the run); why: the judge's reasons"),
             (SAME_EDIT, "a rejected candidate against a kept one with the same source and instruction; why: the rejection reason")]
    table = "\n".join(["| origin | pairs | what |", "|---|---|---|"] + [f"| {o} | {origins.get(o, 0)} | {text} |" for o, text in lines])
    return ["## Pairs", "", "Each row: `source_image` + `instruction_en`/`instruction_zh`, the preferred `chosen_image` and "
            "the `rejected_image`, their sample ids and scores (JSON), and `why`.", "", table, ""]
