"""Triplets for training and scoring the editor: read from a run folder (its `ok` candidates or
its `hq/` subset) or an exported dataset, resized to one square size, and split by source image
so that no photo is seen in both training and held-out rows."""

from __future__ import annotations

import hashlib
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from pipeline.core import schema
from pipeline.core.run_dir import RunDir, StoredFile
from pipeline.postrun.readers import RowsNotFound, triplet_shards

COLUMNS = ["sample_id", "task", "status", "source_image", "target_image", "instruction_en", "source_sha256"]


class DataError(ValueError):
    """The folder holds no usable triplets, or is not a run or a dataset."""


@dataclass
class Triplet:
    sample_id: str
    task: str
    source_key: str  # the source photo's identity: rows of one photo never straddle the split
    instruction: str
    source: np.ndarray  # uint8 size x size x 3
    target: np.ndarray


@dataclass
class Loaded:
    triplets: list[Triplet]
    files: list[Path | StoredFile]
    rows_kind: str
    skipped: Counter = field(default_factory=Counter)


def shard_files(folder: Path | RunDir, rows: str) -> tuple[list[Path | StoredFile], str]:
    """The Parquet files `verify` reads (`pipeline.postrun.readers` knows the run layout)."""
    try:
        return triplet_shards(folder, rows)
    except RowsNotFound as exc:
        raise DataError(str(exc)) from None


def square(png: bytes, size: int) -> np.ndarray:
    """Decoded and resized to size x size. Squashing keeps the whole frame, so an edit near the
    border is still in the picture; the metrics compare like with like."""
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB").resize((size, size), Image.LANCZOS))


def _read_columns(path: Path | StoredFile):
    """The COLUMNS a shard has (an exported dataset may lack some); a stored shard is read
    through its store on one thread, as `run_store.read_parquet` reads it."""
    if isinstance(path, StoredFile):
        with path.open("rb") as handle:
            shard = pq.ParquetFile(handle)
            return shard.read(columns=[c for c in COLUMNS if c in shard.schema_arrow.names], use_threads=False)
    return pq.read_table(path, columns=[c for c in COLUMNS if c in pq.read_schema(path).names])


def load_triplets(folder: Path | RunDir, rows: str = "ok", size: int = 32, tasks: set[str] | None = None) -> Loaded:
    """A folder's triplets: a local Path, or a `RunDir` (local or on a store)."""
    files, kind = shard_files(folder, rows)
    loaded = Loaded([], files, kind)
    for path in files:
        table = _read_columns(path)
        for row in table.to_pylist():
            if tasks is not None and row["task"] not in tasks:
                continue
            if kind == "run:ok" and row.get("status") != schema.OK:
                continue
            reason = _unusable(row)
            if reason:
                loaded.skipped[reason] += 1
                continue
            try:
                source = square(row["source_image"]["bytes"], size)
                target = square(row["target_image"]["bytes"], size)
            except Exception as exc:  # a row that does not decode is counted, not fatal
                loaded.skipped[f"undecodable image: {type(exc).__name__}"] += 1
                continue
            key = row.get("source_sha256") or hashlib.sha256(row["source_image"]["bytes"]).hexdigest()
            loaded.triplets.append(Triplet(row["sample_id"], row["task"], key, row["instruction_en"].strip(), source, target))
    if not loaded.triplets:
        wanted = f" of tasks {sorted(tasks)}" if tasks else ""
        raise DataError(f"no usable triplets{wanted} in {folder} ({kind}); skipped: {dict(loaded.skipped) or 'none'}")
    return loaded


def _unusable(row: dict) -> str | None:
    for column in ("source_image", "target_image"):
        if not (row.get(column) or {}).get("bytes"):
            return f"no {column}"
    if not (row.get("instruction_en") or "").strip():
        return "no instruction"
    return None


def shuffled_sources(triplets: list[Triplet], seed: int) -> list[str]:
    """The source photos in a seeded order that does not depend on the rows' order."""
    sources = sorted({t.source_key for t in triplets}, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())
    if len(sources) < 2:
        raise DataError(f"all {len(triplets)} rows come from one source image; a held-out split needs at least two")
    return sources


def split_by_source(triplets: list[Triplet], held_out_fraction: float, seed: int = 0) -> tuple[list[Triplet], list[Triplet]]:
    """Held-out rows are all rows of a seeded-random share of the source photos (at least one
    photo, and never all of them)."""
    sources = shuffled_sources(triplets, seed)
    count = min(len(sources) - 1, max(1, math.ceil(held_out_fraction * len(sources))))
    held = set(sources[:count])
    return [t for t in triplets if t.source_key not in held], [t for t in triplets if t.source_key in held]


def fold_splits(triplets: list[Triplet], folds: int, seed: int = 0) -> list[tuple[list[Triplet], list[Triplet]]]:
    """K-fold cross-validation by source photo: the photos are dealt into `folds` groups and each
    group is held out once, so every row is scored exactly once and never by a model that saw
    its photo."""
    sources = shuffled_sources(triplets, seed)
    if not 2 <= folds <= len(sources):
        raise DataError(f"{folds} folds: each fold holds out at least one of the {len(sources)} source images, "
                        f"so folds must be between 2 and {len(sources)}")
    group = {key: i % folds for i, key in enumerate(sources)}
    return [([t for t in triplets if group[t.source_key] != k], [t for t in triplets if group[t.source_key] == k])
            for k in range(folds)]
