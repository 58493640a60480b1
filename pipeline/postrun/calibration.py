"""`calibrate`: people's verdicts against the run's filter. Joins RUN/review/verdicts.jsonl with
the candidates' recorded gate values and judge O, measures how the gates and the judge agree with
people per task (today's limits and fitted ones), fits the limits and select.min_o to a target
precision of "keep" (threshold_fit), and writes RUN/review/calibration.json and a config layer of
the limits it moved (calibration_layer). The verdicts come through verdicts.load_verdicts, which
checks every line against the run (its config_hash, its candidate rows). The run is local or on a
store: everything is read through its store, committed candidates only, and written into it."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from filters.gate_limits import default_of, edit_kind, limit_key
from filters.gates import AT_LEAST, AT_MOST
from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.run_dir import RunDir, StoredFile, atomic_write
from pipeline.core.run_store import read_parquet
from pipeline.postrun.agreement import agreement
from pipeline.postrun.judge_overlay import apply_to_rows, load_overlay
from pipeline.postrun.selection import candidate_files
from pipeline.postrun.selection_rules import JUDGED_STATES, judge_state, o_score
from pipeline.postrun.threshold_fit import (
    Fit,
    GateValue,
    LabelledRow,
    fit,
    gate_passes,
    kept,
)
from pipeline.postrun.verdicts import (
    Run,
    Verdict,
    VerdictError,
    load_verdicts,
    verdicts_file,
)

MIN_VERDICTS = 10  # fewer on a task, or no reject or no keep among them: its limits stay as they are
COLUMNS = ["sample_id", "task", "status", "scores", "judge", "edit"]


class CalibrationError(ValueError):
    """The run or its verdicts cannot be calibrated; one line naming what."""


def calibration_file(run_dir: Run) -> Path | StoredFile:
    return RunDir(run_dir).store.file("review/calibration.json")


def default_layer_file(run_dir: Run) -> Path | StoredFile:
    return RunDir(run_dir).store.file("review/calibrated.yaml")


# --- reading ---------------------------------------------------------------------------------


def _run_identity(run: RunDir) -> tuple[str, dict[str, Any]]:
    """The run's config_hash (what verdicts name) and its saved config."""
    if not run.manifest_file.exists():
        raise CalibrationError(f"{run.root} has no manifest.json: not a finished run folder")
    config_hash = json.loads(run.manifest_file.read_text()).get("config_hash")
    if not config_hash:
        raise CalibrationError(f"{run.manifest_file}: no config_hash")
    cfg = yaml.safe_load(run.config_file.read_text()) if run.config_file.exists() else {}
    return config_hash, cfg or {}


def read_candidates(run: RunDir) -> list[dict[str, Any]]:
    """The candidates' score columns, with the judge overlay's judgements where one is in use."""
    overlay = load_overlay(run)
    rows: list[dict[str, Any]] = []
    for path in candidate_files(run):
        part = read_parquet(path, COLUMNS).to_pylist()
        rows += apply_to_rows(part, overlay.entries(path)) if overlay else part
    return rows


# --- joining ---------------------------------------------------------------------------------


class Limits:
    """Where each recorded gate's limit is fitted, for this run's config."""

    def __init__(self, run_cfg: dict[str, Any]):
        self.schema = config_mod.base_schema()
        self.per_kind = ((run_cfg.get("common_gates") or {}).get("per_kind")) or {}
        self.integer_keys: set[str] = set()

    def key_for(self, task: str, kind: str | None, gate: str, recorded: dict[str, Any]) -> str | None:
        direction = recorded.get("direction")
        if direction not in (AT_MOST, AT_LEAST) or float(recorded.get("threshold", 0.0)) == 0.0:
            return None  # a yes/no check
        key = limit_key(task, gate, direction)
        if key is None:
            return None
        if key.per_kind and kind and key.name in (self.per_kind.get(kind) or {}):
            return None  # this row's kind of edit sets the limit: its verdict stays
        try:
            default = default_of(self.schema, key)
        except KeyError:
            return None
        if isinstance(default, int) and not isinstance(default, bool):
            self.integer_keys.add(key.dotted)
        return key.dotted


def labelled(candidates: list[dict[str, Any]], verdicts: dict[str, Verdict], limits: Limits) -> tuple[dict[str, list[LabelledRow]], dict[str, float]]:
    """Rows with a verdict, per task, and today's limit of every fittable key (the one most rows
    recorded)."""
    judged_tasks = {r["task"] for r in candidates if judge_state(schema.loads(r["judge"])) in JUDGED_STATES}
    by_task: dict[str, list[LabelledRow]] = defaultdict(list)
    recorded_limits: dict[str, Counter] = defaultdict(Counter)
    for row in candidates:
        verdict = verdicts.get(row["sample_id"])
        if verdict is None:
            continue
        scores = schema.loads(row["scores"])
        kind = edit_kind(row["task"], schema.loads(row["edit"]))
        gates = {}
        for name, g in (scores.get("gates") or {}).items():
            key = limits.key_for(row["task"], kind, name, g)
            gates[name] = GateValue(float(g["value"]), float(g["threshold"]), bool(g["passed"]), g.get("direction", ""), key)
            if key:
                recorded_limits[key][float(g["threshold"])] += 1
        by_task[row["task"]].append(
            LabelledRow(row["sample_id"], row["task"], verdict.verdict == "keep", gates, o_score(scores), row["task"] in judged_tasks)
        )
    today = {key: counts.most_common(1)[0][0] for key, counts in recorded_limits.items()}
    return dict(sorted(by_task.items())), today


def why_left_alone(rows: list[LabelledRow], min_verdicts: int = MIN_VERDICTS) -> str | None:
    keeps = sum(r.keep for r in rows)
    if len(rows) < min_verdicts:
        return f"{len(rows)} verdicts, fewer than {min_verdicts}"
    if keeps == len(rows):
        return "no rejects among the verdicts"
    if keeps == 0:
        return "no keeps among the verdicts"
    return None


# --- measuring -------------------------------------------------------------------------------


def _judge_says_keep(row: LabelledRow, min_o: float) -> bool:
    return row.o is not None and row.o >= min_o


def measures(rows: list[LabelledRow], today: Fit, fitted: Fit) -> dict[str, dict[str, Any]]:
    """Agreement with people of each filter: the gates alone, the judge alone (on rows it scored),
    and both as selection applies them (kept), with today's settings and fitted ones."""
    scored = [r for r in rows if r.judged and r.o is not None]
    out = {}
    for label, setting in (("today", today), ("fitted", fitted)):
        out[f"gates_{label}"] = agreement((r.keep, all(gate_passes(g, setting.thresholds) for g in r.gates.values())) for r in rows)
        if any(r.judged for r in rows):  # without a judge, what the gates pass is what is kept
            out[f"judge_{label}"] = agreement((r.keep, _judge_says_keep(r, setting.min_o)) for r in scored)
            out[f"kept_{label}"] = agreement((r.keep, kept(r, setting.thresholds, setting.min_o)) for r in rows)
    return out


def kept_measure(measures_of: dict[str, dict[str, Any]], label: str) -> dict[str, Any]:
    return measures_of.get(f"kept_{label}") or measures_of[f"gates_{label}"]


def _moved_limits(task_rows: list[LabelledRow], today: Fit, fitted: Fit) -> list[dict[str, Any]]:
    keys: dict[str, set[str]] = defaultdict(set)
    for row in task_rows:
        for name, gate in row.gates.items():
            if gate.key:
                keys[gate.key].add(name)
    return [
        {"key": key, "gates": sorted(names), "today": today.thresholds[key], "fitted": fitted.thresholds[key]}
        for key, names in sorted(keys.items())
    ]


# --- the command -----------------------------------------------------------------------------


def calibrate_run(
    run_dir: Run, target_precision: float = 0.9, tasks: list[str] | None = None, min_verdicts: int = MIN_VERDICTS
) -> dict[str, Any]:
    """Fit and measure; write RUN/review/calibration.json. Returns what it wrote. A task with fewer
    than `min_verdicts` verdicts keeps its limits: fewer would fit noise."""
    if not 0 < target_precision <= 1:
        raise CalibrationError(f"--target-precision: expected a share in (0, 1], got {target_precision}")
    if min_verdicts < 2:
        raise CalibrationError(f"--min-verdicts: expected at least 2, got {min_verdicts}")
    run = RunDir(run_dir)
    config_hash, run_cfg = _run_identity(run)
    path = verdicts_file(run)
    try:
        verdicts = load_verdicts(run)
    except VerdictError as exc:
        raise CalibrationError(str(exc)) from None
    if not verdicts:
        raise CalibrationError(f"{path}: empty, no verdicts")
    candidates = read_candidates(run)
    if tasks:
        candidates = [r for r in candidates if r["task"] in tasks]
    limits = Limits(run_cfg)
    rows_by_task, today_limits = labelled(candidates, verdicts, limits)
    if not rows_by_task:
        raise CalibrationError(f"{path}: none of its {len(verdicts)} verdicts names a candidate of this run" + (" in the chosen tasks" if tasks else ""))

    min_o = float(((run_cfg.get("select") or {}).get("min_o")) or config_mod.base_schema()["select"]["min_o"])
    today = Fit(today_limits, min_o, frozenset(limits.integer_keys))
    left_alone = {task: why for task, rows in rows_by_task.items() if (why := why_left_alone(rows, min_verdicts))}
    fitted = fit({t: r for t, r in rows_by_task.items() if t not in left_alone}, today, target_precision)

    matched = sum(len(r) for r in rows_by_task.values())
    result: dict[str, Any] = {
        "run": str(run.root),
        "config_hash": config_hash,
        "fitted_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "verdicts": {
            "file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "total": len(verdicts), "matched": matched,  # fewer than total with --task
        },
        "target_precision": target_precision,
        "min_verdicts": min_verdicts,
        "min_o": {"today": today.min_o, "fitted": fitted.min_o},
        "tasks": {},
    }
    for task, rows in rows_by_task.items():
        result["tasks"][task] = {
            "verdicts": len(rows), "keeps": sum(r.keep for r in rows), "rejects": sum(not r.keep for r in rows),
            "calibrated": task not in left_alone, "left_alone_because": left_alone.get(task),
            "limits": _moved_limits(rows, today, fitted),
            "agreement": measures(rows, today, fitted),
        }
        precision = kept_measure(result["tasks"][task]["agreement"], "fitted")["precision"]
        result["tasks"][task]["target_reached"] = precision is not None and precision >= target_precision
    everyone = [r for rows in rows_by_task.values() for r in rows]
    result["overall"] = {"verdicts": len(everyone), "agreement": measures(everyone, today, fitted)}
    atomic_write(calibration_file(run), json.dumps(result, indent=1).encode())
    return result
