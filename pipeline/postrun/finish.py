"""The whole of `run`: the engine commits every shard, then the post-run phases read what it
wrote: the selection (the kept 1 in 20) and the HTML report."""

from __future__ import annotations

import time
from typing import Any

from pipeline.core.run_dir import RunDir
from pipeline.engine.runner import RunResult, run_shards, write_stats


def finish_run(result: RunResult, cfg: dict[str, Any]) -> RunResult:
    """Selection, the instructions' diversity (into the manifest), then the report. The selection reads only score columns and skips itself when
    nothing changed, so a resumed run that had finished costs little here."""
    from pipeline.postrun.diversity import merge_into_manifest
    from pipeline.postrun.selection import select_run

    start = time.perf_counter()
    stats = dict(result.stats)
    run = result.run or RunDir(result.run_dir, cfg.get("io"))
    stats["selection"] = select_run(run, cfg)
    manifest = merge_into_manifest(run, cfg)
    if cfg["run"]["report"]:
        from pipeline.postrun.report import write_report

        stats["report"] = str(write_report(run))
    stats["seconds"] = round(stats["seconds"] + time.perf_counter() - start, 2)
    write_stats(run, stats)
    return RunResult(result.run_dir, manifest, stats, run)


def run_pipeline(cfg: dict[str, Any], log=print, task_stages: list | None = None, check: bool = False) -> RunResult:
    """Run (or resume) the configured tasks and finish the run. Raises `RunFailed` (after
    writing the manifest) when a shard did not commit; nothing is selected then. `check`:
    re-hash the committed shards before resuming (their size and footer are always checked)."""
    return finish_run(run_shards(cfg, log, task_stages, check), cfg)
