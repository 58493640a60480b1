"""A small finished run folder written directly (no Ray): manifest.json and one candidates shard of
ok and rejected rows with real pictures, gate values and, on some rows, a judge's O score. Enough
for the review page, its server and the verdicts file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.image_io import encode_png

RUN_ID = "cfg-review-test"
TASKS = ("color_alteration", "style_transfer", "tone_transformation")


def _pictures(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:48, 0:64]
    source = np.stack([xx * 4, yy * 5, np.full_like(xx, 60 + 10 * seed % 150)], axis=2).astype(np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 16:48] = 255
    target = source.copy()
    target[mask > 0] = rng.integers(0, 255, 3, dtype=np.uint8)
    return source, target, mask


def _row(task: str, status: str, number: int) -> dict:
    source, target, mask = _pictures(number)
    passed = status == "ok"
    gates = {"outside_change": {"value": 0.01 if passed else 0.2, "threshold": 0.05, "direction": "max", "passed": passed}}
    judge = {"state": "scored", "sc": 7, "pq": 8, "o": 7.483, "ranked_by": "o"} if number % 2 else {"ranked_by": "gate_score"}
    return {
        "sample_id": f"{task[:5]}-{status}-{number:02d}", "task": task, "status": status,
        "source_image": schema.image_value(encode_png(source), "s.png"), "target_image": schema.image_value(encode_png(target), "t.png"),
        "mask": schema.image_value(encode_png(mask), "m.png"),
        "instruction_en": f"Make the box <b>{number}</b> red", "instruction_zh": "把盒子变成红色", "instruction_source": "template",
        "source_uri": f"samples/photo{number}.png", "width": 64, "height": 48,
        "scores": schema.dumps({"gates": gates, "gate_score": 0.04 if passed else -0.15}), "judge": schema.dumps(judge),
        "reason": None if passed else "outside_change 0.2 > 0.05",
    }


def make_run(root: Path, tasks: tuple[str, ...] = TASKS, per_status: int = 4) -> Path:
    """A run folder at root with per_status ok and per_status rejected rows for each task."""
    rows, number = [], 0
    for task in tasks:
        for status in ("ok", "rejected"):
            for _ in range(per_status):
                rows.append(_row(task, status, number))
                number += 1
    (root / "candidates").mkdir(parents=True)
    pq.write_table(schema.to_output_table(rows), root / "candidates" / "shard-00000.parquet")
    counts = {t: {"ok": per_status, "rejected": per_status, "error": 0, "skipped": 0} for t in tasks}
    (root / "manifest.json").write_text(json.dumps({"config_hash": RUN_ID, "profile": "cpu", "complete": True, "tasks": counts}))
    return root


def verdict(sample_id: str, task: str, **changes) -> dict:
    """A verdict line of the contract for a row of make_run's run."""
    line = {"sample_id": sample_id, "run": RUN_ID, "verdict": "keep", "score": 4, "note": "", "task": task,
            "reviewer": "ann", "at": "2026-12-04T10:00:00.000Z"}
    return {**line, **changes}
