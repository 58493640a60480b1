"""Where a finished run's rows are, for readers outside the pipeline (the bundled editor's
`verify`): a run folder's candidates or its selected `hq/` subset, or an exported dataset, local
or on a store (a `RunDir` by URI: its shards are given out as `StoredFile`s, read through it)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.run_dir import RunDir, StoredFile

File = Path | StoredFile

ROW_CHOICES = ("ok", "hq")


class RowsNotFound(ValueError):
    """The folder holds no usable shards, or is not a run or a dataset."""


def is_run_folder(folder: Path) -> bool:
    return (folder / "manifest.json").exists() and (folder / "candidates").is_dir()


def _run_shards(folder: Path | RunDir, rows: str) -> list[File]:
    """A run's committed candidate shards, or the hq/ shards its finished selection names (a
    folder the engine did not write, without a plan, is read as it is: `RunDir.committed_files`)."""
    run = RunDir(folder)
    if rows == "ok":
        return [run.store.file(rel) for rel in run.committed_files("candidates")]
    if not run.store.exists("selection/done.json"):
        return [] if run.has_plan() else [run.store.file(rel) for rel in run.store.list("hq", "shard-*.parquet")]
    done = json.loads(run.store.read_text("selection/done.json"))
    return [run.store.file(f["path"]) for f in done.get("files", []) if f["path"].startswith("hq/")]


def triplet_shards(folder: Path | RunDir, rows: str) -> tuple[list[File], str]:
    """The Parquet files to read and what they are. A run folder gives its candidates (`ok`) or
    its hq/ subset (`hq`); an exported dataset (data/*.parquet) or a bare folder of shards is read
    whole, its rows being the selection already."""
    if rows not in ROW_CHOICES:
        raise RowsNotFound(f"--rows must be one of {', '.join(ROW_CHOICES)}, not {rows!r}")
    if isinstance(folder, RunDir):
        if folder.store.remote:
            return _stored_shards(folder, rows)
        folder = Path(folder.root)
    if not folder.is_dir():
        raise RowsNotFound(f"{folder} is not a folder")
    if is_run_folder(folder):
        files = _run_shards(folder, rows)
        if not files:
            hint = " (run `python -m pipeline select` first)" if rows == "hq" else ""
            raise RowsNotFound(f"run {folder} has no {'hq' if rows == 'hq' else 'candidate'} shards{hint}")
        return files, f"run:{rows}"
    if list(folder.glob("data/*.tar")):
        raise RowsNotFound(f"{folder} is a WebDataset export; verify reads Parquet (export with --format parquet)")
    files = sorted(folder.glob("data/*.parquet")) or sorted(folder.glob("*.parquet"))
    if not files:
        raise RowsNotFound(f"{folder} is neither a run folder nor a folder of Parquet shards")
    return files, "dataset"


def _stored_shards(run: RunDir, rows: str) -> tuple[list[File], str]:
    """`triplet_shards` for a folder on a store: a run, or an exported dataset (data/*.parquet)."""
    store = run.store
    if store.exists("manifest.json") and store.list("candidates"):
        files = _run_shards(run, rows)
        if not files:
            hint = " (run `python -m pipeline select` first)" if rows == "hq" else ""
            raise RowsNotFound(f"run {run} has no {'hq' if rows == 'hq' else 'candidate'} shards{hint}")
        return files, f"run:{rows}"
    if store.list("data", "*.tar"):
        raise RowsNotFound(f"{run} is a WebDataset export; verify reads Parquet (export with --format parquet)")
    files = [store.file(rel) for rel in store.list("data", "*.parquet")]
    if not files:
        raise RowsNotFound(f"{run} is neither a run folder nor an exported dataset (data/*.parquet)")
    return files, "dataset"
