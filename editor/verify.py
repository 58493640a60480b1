"""`verify`: train the bundled editor on a run's triplets (or run FLUX.1 Kontext over them), then
score held-out edits against the targets beside two baselines that need no model: the unedited
source (identity) and the training set's mean edit. A second training with the instructions
shuffled across rows tells whether the editor reads the instruction at all."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from editor.data import Triplet, load_triplets, split_by_source
from editor.images import shrink, to_tensor, to_uint8
from editor.metrics import apply_mean_edit, distances, mean_edits, per_task
from pipeline.run_dir import atomic_write

EDITOR_KINDS = ("bundled", "flux-kontext")
# method names in metrics.json beside "editor", "identity" and "mean_edit"
SHUFFLED = "shuffled_instructions"
FROM_NOISE = "editor_from_noise"


@dataclass
class VerifyRequest:
    folder: Path
    out: Path
    rows: str = "ok"
    editor: str = "bundled"
    tasks: set[str] | None = None


def run_verify(request: VerifyRequest, cfg: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    ecfg = cfg["editor"]
    size = int(ecfg["size"])
    began = time.perf_counter()
    # the pool keeps twice the side, so training crops still have detail to resize from
    loaded = load_triplets(request.folder, request.rows, 2 * size, request.tasks)
    train_rows, held = split_by_source(loaded.triplets, float(ecfg["held_out"]), int(ecfg["train"]["seed"]))
    log(f"{len(loaded.triplets)} triplets from {len(loaded.files)} shard(s): {len(train_rows)} to train on, "
        f"{len(held)} held out ({len({t.source_key for t in held})} of {len({t.source_key for t in loaded.triplets})} source images)")
    held_src = shrink(to_tensor([t.source for t in held]), size)
    held_tgt = shrink(to_tensor([t.target for t in held]), size)
    sources, targets = to_uint8(held_src), to_uint8(held_tgt)

    predictions: dict[str, list[np.ndarray]] = {"identity": sources}
    edits = mean_edits(to_uint8(shrink(to_tensor([t.source for t in train_rows]), size)),
                       to_uint8(shrink(to_tensor([t.target for t in train_rows]), size)), [t.task for t in train_rows])
    predictions["mean_edit"] = [(apply_mean_edit(s, edits, t.task) * 255).round().astype(np.uint8) for s, t in zip(sources, held)]

    curves: dict[str, list[tuple[int, float]]] = {}
    if request.editor == "bundled":
        from editor.bundled import train_and_edit

        described, outputs, curves = train_and_edit(cfg, train_rows, held, held_src, request.out, log)
        predictions.update(outputs)
    elif request.editor == "flux-kontext":
        from editor.kontext_run import kontext_predictions

        described, predictions["editor"] = kontext_predictions(cfg, held, size, log)
    else:
        raise ValueError(f"--editor must be one of {', '.join(EDITOR_KINDS)}, not {request.editor!r}")

    # every edit measured once; the task means, overall means, row table and gallery read these
    scores = {method: [distances(p, g) for p, g in zip(preds, targets)] for method, preds in predictions.items()}
    metrics = {
        "editor": {"kind": request.editor, **described},
        "data": data_summary(request, loaded, train_rows, held, size),
        "tasks": task_table(held, scores),
        "overall": {method: per_task(("all", v) for v in values)["all"] for method, values in scores.items()},
        "rows": row_table(held, scores),
    }
    judged = judge_outputs(cfg, held, sources, predictions["editor"], log)
    if judged:
        for task, judgement in judged.items():
            metrics["tasks"][task]["judge"] = judgement
    metrics["findings"] = findings(metrics["tasks"])
    metrics["seconds"] = round(time.perf_counter() - began, 1)
    write_outputs(request.out, metrics, curves, held, predictions, targets, scores, cfg, log)
    return metrics


def task_table(held: list[Triplet], scores: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for method, values in scores.items():
        for task, means in per_task((t.task, v) for t, v in zip(held, values)).items():
            n = means.pop("n")
            table.setdefault(task, {"n": n})[method] = means
    for task, row in table.items():
        row["editor_wins"] = sum(
            scores["editor"][i]["l1"] < scores["identity"][i]["l1"] for i, t in enumerate(held) if t.task == task
        )
    return table


def row_table(held: list[Triplet], scores: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Each held-out row's L1 per method: with a handful of rows per task, a mean can rest on one."""
    return [
        {"sample_id": t.sample_id, "task": t.task, "instruction": t.instruction,
         "l1": {method: round(values[i]["l1"], 5) for method, values in scores.items()}}
        for i, t in enumerate(held)
    ]


def findings(tasks: dict[str, Any]) -> list[str]:
    """Plain sentences on the comparisons that matter, for the console and the metrics file."""
    lines = []
    for task, row in tasks.items():
        ed, ident = row["editor"]["l1"], row["identity"]["l1"]
        verdict = "below" if ed < ident else "above"
        line = f"{task}: editor L1 {ed:.4f} is {abs(1 - ed / ident) * 100:.0f}% {verdict} identity ({ident:.4f}), mean edit {row['mean_edit']['l1']:.4f}"
        if FROM_NOISE in row:
            line += f", same editor from pure noise {row[FROM_NOISE]['l1']:.4f}"
        if SHUFFLED in row:
            sh = row[SHUFFLED]["l1"]
            line += f"; shuffled-instruction control {sh:.4f} ({'worse' if sh > ed else 'not worse'} than the real pairing)"
        lines.append(line + f"; editor closer than identity on {row['editor_wins']} of {row['n']} rows")
    return lines


def data_summary(request: VerifyRequest, loaded, train_rows: list[Triplet], held: list[Triplet], size: int) -> dict[str, Any]:
    return {
        "folder": str(request.folder),
        "rows": request.rows,
        "kind": loaded.rows_kind,
        "files": [str(p) for p in loaded.files],
        "triplets": len(loaded.triplets),
        "skipped": dict(loaded.skipped),
        "size": size,
        "train_rows": len(train_rows),
        "held_out_rows": len(held),
        "train_sources": sorted({t.source_key for t in train_rows}),
        "held_out_sources": sorted({t.source_key for t in held}),
        "held_out_samples": [t.sample_id for t in held],
    }


def judge_outputs(cfg: dict[str, Any], held: list[Triplet], sources: list[np.ndarray], edited: list[np.ndarray], log) -> dict[str, Any] | None:
    """VIEScore of the editor's outputs per task, when the config names a judge."""
    from filters.judge_stage import make_judge

    judge = make_judge(cfg)
    if judge is None:
        return None
    log(f"judging {len(held)} held-out edits")
    judge.setup()
    records = judge.judge_triplets([(s, e, t.instruction) for s, e, t in zip(sources, edited, held)])
    by_task: dict[str, list[dict[str, Any]]] = {}
    for t, record in zip(held, records):
        by_task.setdefault(t.task, []).append(record)
    out = {}
    for task, recs in by_task.items():
        scored = [r for r in recs if r.get("o") is not None]
        out[task] = {"scored": len(scored), "of": len(recs), **{k: (float(np.mean([r[k] for r in scored])) if scored else None) for k in ("sc", "pq", "o")}}
    return out


def write_outputs(out: Path, metrics: dict[str, Any], curves, held, predictions, targets, scores, cfg, log) -> None:
    from editor.plots import write_gallery, write_loss_curve

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.json", (json.dumps(metrics, indent=1) + "\n").encode())
    if curves:
        write_loss_curve(out / "loss_curve.png", curves, title=f"verify: {metrics['editor']['kind']} editor")
    columns = ["source", "target", "editor", *([SHUFFLED] if SHUFFLED in predictions else []), "mean_edit"]
    examples = []
    for index in gallery_rows(held, int(cfg["editor"]["gallery_rows"])):
        t = held[index]
        images = {"source": predictions["identity"][index], "target": targets[index]}
        notes = {"source": f"L1 {scores['identity'][index]['l1']:.3f}"}
        for method in columns[2:]:
            images[method] = predictions[method][index]
            notes[method] = f"L1 {scores[method][index]['l1']:.3f}"
        examples.append({"task": t.task, "instruction": t.instruction, "images": images, "notes": notes})
    write_gallery(out / "gallery.png", examples, columns)
    for line in metrics["findings"]:
        log(line)
    log(f"wrote {out / 'metrics.json'}")


def gallery_rows(held: list[Triplet], limit: int) -> list[int]:
    """Up to `limit` rows, taking tasks in turn so each task shows."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(held):
        by_task.setdefault(t.task, []).append(i)
    picked: list[int] = []
    while len(picked) < limit and any(by_task.values()):
        for task in sorted(by_task):
            if by_task[task] and len(picked) < limit:
                picked.append(by_task[task].pop(0))
    return picked
