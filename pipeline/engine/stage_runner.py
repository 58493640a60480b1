"""Runs one stage over a batch of rows with per-row error isolation. No Ray here: the Ray
adapter and the tests both call `run_stage`."""

from __future__ import annotations

import sys
import time
import traceback
from collections import defaultdict

from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.rows import mark, provenance, record_stage
from pipeline.core.stage import Row, Stage, StopRun


def applies(stage: Stage, row: Row) -> bool:
    return row.get("status") in stage.accepts and (stage.tasks is None or row.get("task") in stage.tasks)


def _error_row(row: Row, stage: Stage, exc: BaseException) -> Row:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    record_stage(row, stage.name, error=traceback.format_exception_only(type(exc), exc)[-1].strip())
    # a crash is an error whatever the row's status was (the split and the writer take final rows)
    return row_status.crashed(row, f"{stage.name}: {type(exc).__name__}: {message}"[:500])


def is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")  # never import torch just to ask
    if torch is not None and isinstance(exc, getattr(torch.cuda, "OutOfMemoryError", ())):
        return True
    return isinstance(exc, (RuntimeError, MemoryError)) and "out of memory" in str(exc).lower()


def _free_accelerator_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _process(stage: Stage, rows: list[Row]) -> list[Row]:
    """The whole batch at once. Out of memory: halve the micro-batch and retry the same rows.
    Any other failure: row by row, so one bad row fails alone."""
    try:
        return stage.process_batch([dict(r) for r in rows])
    except StopRun:
        raise  # the run stops; retrying row by row would only call a dead server again
    except Exception as exc:
        if len(rows) == 1:
            return [_error_row(dict(rows[0]), stage, exc)]
        if is_out_of_memory(exc):
            _free_accelerator_memory()
            half = len(rows) // 2
            return _process(stage, rows[:half]) + _process(stage, rows[half:])
        return [out for row in rows for out in _process(stage, [row])]


def _settle_fan_out(stage: Stage, inputs: list[Row], outputs: list[Row]) -> list[Row]:
    """After a proposal step, each unit knows how many rows it produced; a unit that produced
    none still leaves one row saying so."""
    by_unit: dict[str, list[Row]] = defaultdict(list)
    for row in outputs:
        by_unit[row["_unit"]].append(row)
    settled: list[Row] = []
    for row in inputs:
        produced = by_unit.pop(row["_unit"], [])
        if not produced:
            produced = [mark(dict(row), schema.SKIPPED, f"{stage.name}: no candidate proposed")]
        for out in produced:
            out["_unit_rows"] = len(produced)
            _split_timings(out, len(produced))
        settled.extend(produced)
    if by_unit:
        raise RuntimeError(f"{stage.name} produced rows for units it was not given: {sorted(by_unit)[:3]}")
    return settled


def _split_timings(row: Row, siblings: int) -> None:
    """A candidate inherits its input's provenance: its share of the stages before the fan-out
    is 1/siblings of theirs, so that summing over a task's rows counts each second once."""
    if siblings <= 1:
        return
    prov = provenance(row)
    for info in prov.get("stages", {}).values():
        for key in ("seconds", "cpu_seconds"):
            if key in info:
                info[key] = round(info[key] / siblings, 6)
    row["provenance"] = schema.dumps(prov)


def run_stage(stage: Stage, rows: list[Row], **where: str) -> list[Row]:
    """`where` (such as the Ray node) is recorded with the stage's timing on each row it made:
    `seconds`, the row's share of the batch's wall time, and `cpu_seconds`, its share of the
    CPU time this process spent on the batch (all its threads)."""
    active = [r for r in rows if applies(stage, r)]
    if not active:
        return rows
    passive = [r for r in rows if not applies(stage, r)]
    start, start_cpu = time.perf_counter(), time.process_time()
    processed = _process(stage, active)
    if stage.fans_out:
        processed = _settle_fan_out(stage, active, processed)
    share = 1 / max(1, len(processed))
    wall, cpu = (time.perf_counter() - start) * share, (time.process_time() - start_cpu) * share
    for row in processed:
        record_stage(row, stage.name, seconds=round(wall, 4), cpu_seconds=round(cpu, 4), **where)
    return passive + processed
