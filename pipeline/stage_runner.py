"""Runs one stage over a batch of rows with per-row error isolation. No Ray here: the Ray
adapter and the tests both call `run_stage`."""

from __future__ import annotations

import time
import traceback
from collections import defaultdict

from pipeline import schema
from stages.base import Row, Stage
from stages.rows import mark, record_stage


def _applies(stage: Stage, row: Row) -> bool:
    return row.get("status") == schema.PENDING and (stage.tasks is None or row.get("task") in stage.tasks)


def _error_row(row: Row, stage: Stage, exc: BaseException) -> Row:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    record_stage(row, stage.name, error=traceback.format_exception_only(type(exc), exc)[-1].strip())
    return mark(row, schema.ERROR, f"{stage.name}: {type(exc).__name__}: {message}"[:500])


def _process_isolated(stage: Stage, rows: list[Row]) -> list[Row]:
    """The whole batch at once; if it raises, row by row so one bad row fails alone."""
    try:
        return stage.process_batch([dict(r) for r in rows])
    except Exception:
        if len(rows) == 1:
            raise
    out: list[Row] = []
    for row in rows:
        try:
            out.extend(stage.process_batch([dict(row)]))
        except Exception as exc:
            out.append(_error_row(dict(row), stage, exc))
    return out


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
        settled.extend(produced)
    if by_unit:
        raise RuntimeError(f"{stage.name} produced rows for units it was not given: {sorted(by_unit)[:3]}")
    return settled


def run_stage(stage: Stage, rows: list[Row]) -> list[Row]:
    active = [r for r in rows if _applies(stage, r)]
    if not active:
        return rows
    passive = [r for r in rows if not _applies(stage, r)]
    start = time.perf_counter()
    if len(active) == 1:
        try:
            processed = stage.process_batch([dict(active[0])])
        except Exception as exc:
            processed = [_error_row(dict(active[0]), stage, exc)]
    else:
        processed = _process_isolated(stage, active)
    if stage.fans_out:
        processed = _settle_fan_out(stage, active, processed)
    per_row = (time.perf_counter() - start) / max(1, len(processed))
    for row in processed:
        record_stage(row, stage.name, seconds=round(per_row, 4))
    return passive + processed
