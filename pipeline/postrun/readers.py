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
    its hq/ subset (`hq`); an exported dataset (data/*.parquet), or a local bare folder of shards,
    is read whole, its rows being the selection already. The folder is local or on a store: it is
    read through its `RunStore` either way."""
    if rows not in ROW_CHOICES:
        raise RowsNotFound(f"--rows must be one of {', '.join(ROW_CHOICES)}, not {rows!r}")
    run = RunDir(folder)
    store = run.store
    if not store.remote and not Path(run.root).is_dir():
        raise RowsNotFound(f"{run} is not a folder")
    if store.exists("manifest.json") and store.exists("candidates"):
        files = _run_shards(run, rows)
        if not files:
            hint = " (run `python -m pipeline select` first)" if rows == "hq" else ""
            raise RowsNotFound(f"run {run} has no {'hq' if rows == 'hq' else 'candidate'} shards{hint}")
        return files, f"run:{rows}"
    if store.list("data", "*.tar"):
        raise RowsNotFound(f"{run} is a WebDataset export; verify reads Parquet (export with --format parquet)")
    files = [store.file(rel) for rel in store.list("data", "*.parquet")]
    if not files and not store.remote:  # shards put together by hand or by another tool
        files = sorted(Path(run.root).glob("*.parquet"))
    if not files:
        what = "a folder of Parquet shards" if not store.remote else "an exported dataset (data/*.parquet)"
        raise RowsNotFound(f"{run} is neither a run folder nor {what}")
    return files, "dataset"
