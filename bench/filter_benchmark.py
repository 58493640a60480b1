"""How well the gates alone separate good triplets from damaged ones.

Good triplets come from the cpu recipes run in-process on the bundled sample photos (decode ->
each task's stages, exactly as a run shapes its rows); those their own task gate passes are kept.
Each is then damaged in every way that applies to it (the defects: bench/filter_defects.py):

  unrelated     the target of another photo's edit of the same task, resized to fit
  noop          the source handed back as the target
  leak          the edit spilling outside its mask (local edits)
  noise         heavy Gaussian noise (sigma 25 of 255; `--severity mild`: 8)
  blur          a Gaussian blur (sigma 2 px at the working size; mild: 1)
  shifted       the target translated by 2-4% of the long side (mild: 0.5-1%)
  wrong_colour  the object recoloured to a hue far from the stated one (colour edits)
  wrong_text    other words rendered in the same place and style (text edits)

  noise_inside  the same noise inside the mask only: the edited object degraded (local edits)
  blur_inside   the same blur inside the mask only (local edits)

Every variant goes through its task gate and then the common gates; the report gives, per kind,
the share rejected, and the share of the untouched good triplets kept, for each split of the
photos (SPLITS): thresholds are chosen on `tune` and reported on `held_out`; no photo is in both,
and an `unrelated` target comes from a photo of the same split.

    python -m bench.filter_benchmark [--tasks a,b] [--severity standard|mild] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.filter_defects import KINDS, SEVERITIES, SEVERITY, plant
from filters.common_gates import CommonGatesStage
from filters.gate_stage import GateStage
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.inputs import discover
from pipeline.core.stage import Row, Stage
from pipeline.engine.stage_list import SplitByTask
from pipeline.engine.stage_runner import run_stage
from stages.decode import DecodeLimits
from stages.decode_stage import DecodeStage
from tasks import build_stages
from tasks.text.render import TextRenderStage

DEFAULT_TASKS = (
    "color_alteration",
    "material_modification",
    "subject_remove",
    "subject_add",
    "subject_replace",
    "background_change",
    "style_transfer",
    "tone_transformation",
    "text_modification",
)
RESULTS = Path(__file__).resolve().parent / "results" / "filter_benchmark.json"
# the bundled photos (pipeline.core.inputs.samples_dir) by file name
SPLITS = {"tune": ("coffee.png", "rocket.jpg"), "held_out": ("astronaut.png", "chelsea.png", "motorcycle_left.png")}


LOCAL_GATES = ("outside_window_change", "inside_sharpness_ratio", "inside_noise_increase", "inside_colour_noise_increase", "inside_blockiness_increase", "inside_edge_crispness")


def split_of(row: Row) -> str:
    name = Path(str(row.get("source_uri") or "")).name
    return next((split for split, names in SPLITS.items() if name in names), "other")


# ---- good triplets ---------------------------------------------------------------------------


def input_rows(cfg: dict[str, Any]) -> list[Row]:
    """The bundled photos decoded as a run decodes them (videos left out)."""
    records = [r for r in discover(cfg["input"]) if r["kind"] != "video"]
    rows = [
        {"sample_id": "", "task": "", "status": schema.PENDING, "source_uri": r["uri"], "license": r.get("license"), "_shard": 0, "_input": schema.dumps({**r, "index": i})}
        for i, r in enumerate(records)
    ]
    return run_stage(DecodeStage(DecodeLimits(**cfg["decode"])), rows)


def task_gate(stages: list[Stage]) -> GateStage:
    gates = [s for s in stages if isinstance(s, GateStage)]
    if len(gates) != 1:
        raise RuntimeError(f"expected one gate stage in the recipe, found {[s.name for s in gates]}")
    return gates[0]


def run_recipe(task: str, cfg: dict[str, Any], inputs: list[Row]) -> tuple[list[Row], GateStage, dict[str, np.ndarray]]:
    """The task's candidates with their verdicts, its gate, and for text edits the erased
    picture each was drawn on (to draw other words on it)."""
    stages = build_stages(task, cfg)
    rows = SplitByTask([task]).process_batch(inputs)
    erased: dict[str, np.ndarray] = {}
    for stage in stages:
        if isinstance(stage, TextRenderStage):
            erased = {r["sample_id"]: decode_image(r["target_image"]["bytes"]) for r in rows if r["status"] == schema.PENDING and r.get("target_image")}
        rows = run_stage(stage, rows)
    return rows, task_gate(stages), erased


# ---- judging ---------------------------------------------------------------------------------


def fresh(row: Row, target: np.ndarray, variant: str) -> Row:
    """The row as its task gate first saw it, with `target` in place of its target."""
    copy = dict(row)
    copy.update(status=schema.PENDING, reason=None, scores=None, target_image=schema.image_value(encode_image(target)))
    copy["sample_id"] = f"{row['sample_id']}:{variant}"
    return copy


def judge(rows: list[Row], gate: GateStage, common: CommonGatesStage) -> list[Row]:
    """Task gate, then the common gates (which take ok and rejected rows alike)."""
    gated = run_stage(gate, rows)
    return [common.process_row(r) if r["status"] in common.accepts else r for r in gated]


def failed_groups(row: Row, task_gate_names: set[str]) -> dict[str, bool]:
    gates = schema.loads(row.get("scores")).get("gates", {})
    failed = {name for name, g in gates.items() if not g["passed"]}
    return {"task": bool(failed & task_gate_names), "common": bool(failed - task_gate_names)}


def benchmark(tasks: tuple[str, ...] = DEFAULT_TASKS, severity: str = "standard", log: Callable[[str], None] = print) -> dict[str, Any]:
    SEVERITY.clear()
    SEVERITY.update(SEVERITIES[severity])
    cfg = config.load_config("cpu")
    common = CommonGatesStage.from_config(cfg)
    start = time.perf_counter()
    inputs = input_rows(cfg)
    made: dict[str, tuple[list[Row], GateStage, dict]] = {}
    for task in tasks:
        t0 = time.perf_counter()
        made[task] = run_recipe(task, cfg, inputs)
        log(f"{task}: {len(made[task][0])} rows in {time.perf_counter() - t0:.1f}s")
    generated = time.perf_counter() - start

    new_counts = lambda: defaultdict(lambda: {"n": 0, "rejected": 0, "task_gate": 0, "common_gates": 0, "by_task": defaultdict(lambda: [0, 0])})  # noqa: E731
    counts_by_split: dict[str, dict[str, dict[str, Any]]] = defaultdict(new_counts)
    misses_by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    values_by_split: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for task, (rows, gate, erased) in made.items():
        good = [r for r in rows if r["status"] == schema.OK]
        variants: list[tuple[str, Row]] = []
        for row in good:
            variants.append(("good", fresh(row, decode_image(row["target_image"]["bytes"]), "good")))
            pool = [r for r in good if split_of(r) == split_of(row)]
            for kind, target in plant(row, pool, erased, cfg).items():
                variants.append((kind, fresh(row, target, kind)))
        judged = judge([v for _, v in variants], gate, common)
        by_id = {r["sample_id"]: r for r in judged}
        task_names = _task_gate_names(judged)
        for kind, variant in variants:
            result = by_id[variant["sample_id"]]
            rejected = result["status"] != schema.OK
            counts, misses = counts_by_split[split_of(variant)], misses_by_split[split_of(variant)]
            for name, g in schema.loads(result.get("scores")).get("gates", {}).items():
                if name in LOCAL_GATES:
                    values_by_split[split_of(variant)][kind][name].append(g["value"])
            entry = counts[kind]
            entry["n"] += 1
            entry["rejected"] += rejected
            groups = failed_groups(result, task_names)
            entry["task_gate"] += groups["task"]
            entry["common_gates"] += groups["common"]
            entry["by_task"][task][0] += 1
            entry["by_task"][task][1] += rejected
            if rejected == (kind == "good"):
                misses.append({"kind": kind, "task": task, "sample_id": variant["sample_id"], "reason": result.get("reason"), "edit": schema.loads(result.get("edit")).get("name") or schema.loads(result.get("edit")).get("style")})
    total = time.perf_counter() - start
    splits = {}
    for split in sorted(counts_by_split, key=lambda s: list(SPLITS).index(s) if s in SPLITS else len(SPLITS)):
        splits[split] = {"photos": list(SPLITS.get(split, ())), **_report(counts_by_split[split], misses_by_split[split])}
        splits[split]["local_gate_values"] = _spread(values_by_split[split])
    return {
        "profile": "cpu",
        "gates": "task gate + common gates (pixel statistics); no judge, no model gates",
        "tasks": list(tasks),
        "severity": severity,
        "defect_settings": {k: list(v) if isinstance(v, tuple) else v for k, v in SEVERITY.items()},
        "splits": splits,
        "seconds": {"generate": round(generated, 1), "total": round(total, 1)},
    }


def _spread(values: dict) -> dict[str, Any]:
    """Per kind and local gate, the values' 0/5/50/95/100th percentiles: where a threshold can go."""
    return {kind: {name: [round(float(q), 3) for q in np.percentile(v, [0, 5, 50, 95, 100])] for name, v in sorted(gates.items())} for kind, gates in values.items()}


def _task_gate_names(rows: list[Row]) -> set[str]:
    """Gate names the task gate recorded: everything in `gates` that is not in `gates_ran`."""
    names: set[str] = set()
    for row in rows:
        scores = schema.loads(row.get("scores"))
        names |= set(scores.get("gates", {})) - set(scores.get("gates_ran", []))
    return names


def _report(counts, misses) -> dict[str, Any]:
    kinds: dict[str, Any] = {}
    for kind in ("good", *KINDS):
        if kind not in counts:
            continue
        c = counts[kind]
        share = c["rejected"] / c["n"]
        kinds[kind] = {
            "n": c["n"],
            "rejected": c["rejected"],
            "share_rejected": round(share, 4),
            "share_kept": round(1 - share, 4),
            "rejected_by_task_gate": c["task_gate"],
            "rejected_by_common_gates": c["common_gates"],
            "by_task": {t: {"n": n, "rejected": r} for t, (n, r) in sorted(c["by_task"].items())},
        }
    defects = [k for k in kinds if k != "good"]
    return {
        "good_kept": kinds.get("good", {}).get("share_kept"),
        "min_share_rejected": min((kinds[k]["share_rejected"] for k in defects), default=None),
        "kinds": kinds,
        "misses": misses,
    }


def table(report: dict[str, Any]) -> str:
    lines = [f"{'kind':<14}{'n':>6}{'rejected':>10}{'share':>8}{'by task gate':>14}{'by common':>11}"]
    for kind, k in report["kinds"].items():
        share = k["share_kept"] if kind == "good" else k["share_rejected"]
        label = "good (kept)" if kind == "good" else kind
        lines.append(f"{label:<14}{k['n']:>6}{k['rejected']:>10}{share:>8.3f}{k['rejected_by_task_gate']:>14}{k['rejected_by_common_gates']:>11}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default=",".join(DEFAULT_TASKS))
    parser.add_argument("--severity", choices=sorted(SEVERITIES), default="standard")
    parser.add_argument("--out", default=None, help="default: bench/results/filter_benchmark[_mild].json")
    args = parser.parse_args(argv)
    report = benchmark(tuple(t for t in args.tasks.split(",") if t), args.severity)
    for split, part in report["splits"].items():
        print(f"\n{split} ({', '.join(part['photos'])}), severity {args.severity}")
        print(table(part))
        print(f"good kept {part['good_kept']:.3f}; lowest share rejected {part['min_share_rejected']:.3f}")
        for miss in part["misses"][:40]:
            print(f"  missed {miss['kind']:<12} {miss['task']:<22} {miss['edit']!s:<16} {miss['reason']}")
    print(f"{report['seconds']['total']:.0f}s")
    out = Path(args.out or (RESULTS if args.severity == "standard" else RESULTS.with_name(f"filter_benchmark_{args.severity}.json")))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
