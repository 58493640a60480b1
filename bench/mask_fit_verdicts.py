"""The mask-fit gate (filters/mask_fit.py) against people's verdicts on a finished run.

For every reviewed row whose task has the gate on, the gate's value is computed from the row's
source and mask (the run recorded its gates before the gate existed) and printed beside the
verdict and the note. Then: the separation (AUC of the value for keep against reject), and the
agreement with people (pipeline/postrun/agreement.py) of all the gates the run recorded, before
and after adding the mask-fit gate, at its configured limits and at one limit shared by the
gate's tasks, fitted (pipeline/postrun/threshold_fit.py, target precision 0.9) on one half of the
photos and reported on the other, both ways round. The halves are the filter benchmark's
(bench/filter_benchmark.SPLITS): a limit fitted on `tune` is reported on `held_out` and the other
way; rows of other inputs (the motion clip) count only in the overall figures.

    .venv/bin/python -m bench.mask_fit_verdicts RUN [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.filter_benchmark import SPLITS
from filters.gates import AT_LEAST
from filters.mask_fit import mask_fit
from pipeline.core import config as config_mod
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.run_dir import RunDir
from pipeline.core.task_names import TASK_IDS
from pipeline.postrun import calibration
from pipeline.postrun.agreement import agreement
from pipeline.postrun.selection import candidate_files
from pipeline.postrun.threshold_fit import (
    GateValue,
    LabelledRow,
    fit_gates,
    gate_passes,
)
from pipeline.postrun.verdicts import load_verdicts

SHARED_KEY = "min_mask_fit"  # one limit for every task the gate is on: a half of 60 rows cannot fit one per task
TARGET_PRECISION = 0.9


def _split(key: str) -> str:
    return next((split for split, names in SPLITS.items() if Path(key).name in names), "other")


def _limits_on(cfg: dict[str, Any]) -> dict[str, float]:
    """The gate's configured limit per task where it is on."""
    gates = cfg["common_gates"]
    out = {}
    for task in TASK_IDS:
        limit = {**gates["limits"], **(gates["per_task"].get(task) or {})}.get("min_mask_fit")
        if limit is not None:
            out[task] = float(limit)
    return out


def reviewed_rows(run: RunDir, verdicts: dict) -> list[dict[str, Any]]:
    columns = ["sample_id", "task", "status", "scores", "judge", "edit", "provenance", "source_image", "mask"]
    rows = []
    for path in candidate_files(run):
        for row in pq.read_table(path, columns=columns).to_pylist():
            if row["sample_id"] in verdicts:
                rows.append(row)
    return rows


def measure(run_path: Path) -> dict[str, Any]:
    run = RunDir(run_path)
    verdicts = load_verdicts(run.root)
    cfg = config_mod.load_config("cpu")
    limits_on = _limits_on(cfg)
    if not limits_on:
        raise ValueError("min_mask_fit is null for every task in configs/filters/common_gates.yaml: nothing to measure")
    rows = reviewed_rows(run, verdicts)
    run_cfg = config_mod.read_yaml(run.config_file) if run.config_file.is_file() else {}
    by_task, _today = calibration.labelled(rows, verdicts, calibration.Limits(run_cfg))
    labelled = {r.sample_id: r for task_rows in by_task.values() for r in task_rows}

    table, split_of = [], {}
    for row in rows:
        split_of[row["sample_id"]] = _split(schema.loads(row["provenance"]).get("input", {}).get("key", ""))
        limit = limits_on.get(row["task"])
        if limit is None or not row.get("mask"):
            continue
        value = mask_fit(decode_image(row["source_image"]["bytes"]), decode_mask(row["mask"]["bytes"]))
        if value is None:
            continue
        value = round(value, 4)
        labelled[row["sample_id"]].gates["mask_fit"] = GateValue(value, limit, value >= limit, AT_LEAST, SHARED_KEY)
        verdict = verdicts[row["sample_id"]]
        table.append({"task": row["task"], "split": split_of[row["sample_id"]], "status": row["status"], "verdict": verdict.verdict,
                      "mask_fit": value, "note": verdict.note or ""})

    everyone = list(labelled.values())
    start = min(limits_on.values())  # the shared limit's fit starts from the loosest configured one

    def agree(subset: list[LabelledRow], thresholds: dict[str, float] | None, with_gate: bool) -> dict[str, Any]:
        def passes(row: LabelledRow) -> bool:
            gates = row.gates.values() if with_gate else [g for name, g in row.gates.items() if name != "mask_fit"]
            return all(gate_passes(g, thresholds or {}) for g in gates)
        return agreement((r.keep, passes(r)) for r in subset)

    halves = {split: [r for r in everyone if split_of[r.sample_id] == split] for split in SPLITS}
    folds = {}
    for fit_on, report_on in (("tune", "held_out"), ("held_out", "tune")):
        fitted = fit_gates(halves[fit_on], {SHARED_KEY: start}, 0.0, TARGET_PRECISION)[SHARED_KEY]
        folds[f"fit_on_{fit_on}"] = {
            "limit": fitted, "reported_on": report_on,
            "before": agree(halves[report_on], None, False), "after": agree(halves[report_on], {SHARED_KEY: fitted}, True),
        }
    # every row judged at the limit fitted on the other half (rows of neither half at the configured limits)
    held_limit = {split: folds[f"fit_on_{other}"]["limit"] for split, other in (("held_out", "tune"), ("tune", "held_out"))}
    out_of_fold = agreement(
        (r.keep, all(gate_passes(g, {SHARED_KEY: held_limit[split_of[r.sample_id]]} if split_of[r.sample_id] in held_limit else {}) for g in r.gates.values()))
        for r in everyone
    )
    return {
        "run": str(run.root), "verdicts": len(verdicts), "limits": limits_on, "table": table,
        "auc": {name: _auc([t for t in table if name == "all" or t["split"] == name]) for name in ("all", *SPLITS)},
        "agreement": {
            "before": agree(everyone, None, False),
            "after_default": agree(everyone, None, True),
            "after_out_of_fold": out_of_fold,
            "by_split_before": {s: agree(h, None, False) for s, h in halves.items()},
        },
        "folds": folds,
    }


def _auc(table: list[dict[str, Any]]) -> float | None:
    """The chance that a kept row's value is above a rejected row's (ties count half)."""
    keeps = [t["mask_fit"] for t in table if t["verdict"] == "keep"]
    rejects = [t["mask_fit"] for t in table if t["verdict"] == "reject"]
    if not keeps or not rejects:
        return None
    wins = sum((k > r) + 0.5 * (k == r) for k in keeps for r in rejects)
    return round(wins / (len(keeps) * len(rejects)), 3)


def _fmt(a: dict[str, Any]) -> str:
    return f"n {a['n']:>2}  kept {a['kept']:>2}  accuracy {a['accuracy']}  kappa {a['kappa']}  precision {a['precision']}  recall {a['recall']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    try:
        report = measure(Path(args.run))
    except (calibration.CalibrationError, ValueError, OSError) as exc:
        print(f"mask_fit_verdicts: {exc}", file=sys.stderr)
        return 1
    print(f"{'task':<22} {'split':<9} {'status':<9} {'verdict':<7} {'mask_fit':>8}  note")
    for t in sorted(report["table"], key=lambda t: (t["task"], t["mask_fit"])):
        print(f"{t['task']:<22} {t['split']:<9} {t['status']:<9} {t['verdict']:<7} {t['mask_fit']:>8.3f}  {t['note']}")
    print(f"\nlimits: {report['limits']}")
    print("AUC (keep above reject): " + ", ".join(f"{k} {v}" for k, v in report["auc"].items()))
    ag = report["agreement"]
    print(f"\nall gates, {ag['before']['n']} verdicts")
    print(f"  before                 {_fmt(ag['before'])}")
    print(f"  after, default limits  {_fmt(ag['after_default'])}")
    print(f"  after, out of fold     {_fmt(ag['after_out_of_fold'])}  (each half at the limit fitted on the other)")
    for name, fold in report["folds"].items():
        print(f"{name}: limit {fold['limit']}, reported on {fold['reported_on']}")
        print(f"  before                 {_fmt(fold['before'])}")
        print(f"  after                  {_fmt(fold['after'])}")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
