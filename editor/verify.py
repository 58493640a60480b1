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

from editor.data import Triplet, fold_splits, load_triplets, split_by_source
from editor.images import shrink, to_tensor, to_uint8
from editor.methods import FROM_NOISE, SHUFFLED
from editor.metrics import apply_mean_edit, distances, mean_edits, per_task
from pipeline.core.run_dir import atomic_write

EDITOR_KINDS = ("bundled", "flux-kontext")


@dataclass
class VerifyRequest:
    folder: Path
    out: Path
    rows: str = "ok"
    editor: str = "bundled"
    tasks: set[str] | None = None


@dataclass
class HeldOutEdits:
    """One split's held-out rows with every method's edit of them, measured once."""

    train_rows: list[Triplet]
    held: list[Triplet]
    targets: list[np.ndarray]
    predictions: dict[str, list[np.ndarray]]
    scores: dict[str, list[dict[str, float]]]
    described: dict[str, Any]
    curves: dict[str, list[tuple[int, float]]]


def run_verify(request: VerifyRequest, cfg: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """One held-out split by default; with editor.folds = K, K trainings in which every source
    photo is held out exactly once, scored fold by fold and pooled over all rows."""
    ecfg = cfg["editor"]
    size, folds, seed = int(ecfg["size"]), int(ecfg["folds"]), int(ecfg["train"]["seed"])
    began = time.perf_counter()
    # the pool keeps twice the side, so training crops still have detail to resize from
    loaded = load_triplets(request.folder, request.rows, 2 * size, request.tasks)
    n_sources = len({t.source_key for t in loaded.triplets})
    if folds > 1:
        splits = fold_splits(loaded.triplets, folds, seed)
    else:
        splits = [split_by_source(loaded.triplets, float(ecfg["held_out"]), seed)]
    parts = []
    for k, (train_rows, held) in enumerate(splits, 1):
        fold = f"fold {k} of {folds}: " if folds > 1 else ""
        log(f"{fold}{len(loaded.triplets)} triplets from {len(loaded.files)} shard(s): {len(train_rows)} to train on, "
            f"{len(held)} held out ({len({t.source_key for t in held})} of {n_sources} source images)")
        fold_out = request.out / f"fold_{k}" if folds > 1 else request.out
        parts.append(edit_held_out(request, cfg, train_rows, held, fold_out, log))
        if folds > 1:  # each fold's own file and pictures, so a finished fold can be read before the rest
            fold_metrics = assemble(request, loaded, [parts[-1]], parts[-1], size)
            fold_metrics["seconds"] = round(time.perf_counter() - began, 1)
            write_outputs(fold_out, fold_metrics, parts[-1], cfg, lambda msg: None)
    pooled = pool(parts)
    metrics = assemble(request, loaded, parts, pooled, size)
    judged = judge_outputs(cfg, pooled.held, pooled.predictions["identity"], pooled.predictions["editor"], log)
    if judged:
        for task, judgement in judged.items():
            metrics["tasks"][task]["judge"] = judgement
    metrics["seconds"] = round(time.perf_counter() - began, 1)
    write_outputs(request.out, metrics, pooled, cfg, log)
    return metrics


def edit_held_out(request: VerifyRequest, cfg: dict[str, Any], train_rows: list[Triplet], held: list[Triplet],
                  out: Path, log: Callable[[str], None]) -> HeldOutEdits:
    size = int(cfg["editor"]["size"])
    held_src = shrink(to_tensor([t.source for t in held]), size)
    sources, targets = to_uint8(held_src), to_uint8(shrink(to_tensor([t.target for t in held]), size))
    predictions: dict[str, list[np.ndarray]] = {"identity": sources}
    edits = mean_edits(to_uint8(shrink(to_tensor([t.source for t in train_rows]), size)),
                       to_uint8(shrink(to_tensor([t.target for t in train_rows]), size)), [t.task for t in train_rows])
    predictions["mean_edit"] = [(apply_mean_edit(s, edits, t.task) * 255).round().astype(np.uint8) for s, t in zip(sources, held)]

    curves: dict[str, list[tuple[int, float]]] = {}
    if request.editor == "bundled":
        from editor.bundled import train_and_edit

        described, outputs, curves = train_and_edit(cfg, train_rows, held, held_src, out, log)
        predictions.update(outputs)
    elif request.editor == "flux-kontext":
        from editor.kontext_run import kontext_predictions

        described, predictions["editor"] = kontext_predictions(cfg, held, size, log)
    else:
        raise ValueError(f"--editor must be one of {', '.join(EDITOR_KINDS)}, not {request.editor!r}")
    # every edit measured once; the task means, overall means, row table and gallery read these
    scores = {method: [distances(p, g) for p, g in zip(preds, targets)] for method, preds in predictions.items()}
    return HeldOutEdits(train_rows, held, targets, predictions, scores, {"kind": request.editor, **described}, curves)


def pool(parts: list[HeldOutEdits]) -> HeldOutEdits:
    """The folds' held-out rows as one set. Only methods every fold has are kept: a fold with a
    single training row has no shuffled control."""
    if len(parts) == 1:
        return parts[0]
    methods = [m for m in parts[0].predictions if all(m in p.predictions for p in parts)]
    first = parts[0].described
    described = {**first, "checkpoints": str(Path(first["checkpoints"]).parent.parent / "fold_*" / "checkpoints")}
    if "train_seconds" in first:  # summed: the time the whole cross-validation spent training
        described["train_seconds"] = {m: round(sum(p.described["train_seconds"].get(m) or 0 for p in parts), 1) for m in first["train_seconds"]}
        described["final_loss"] = {m: float(np.mean([p.described["final_loss"][m] for p in parts if m in p.described["final_loss"]]))
                                   for m in first["final_loss"]}
    return HeldOutEdits(
        train_rows=[],
        held=[t for p in parts for t in p.held],
        targets=[g for p in parts for g in p.targets],
        predictions={m: [x for p in parts for x in p.predictions[m]] for m in methods},
        scores={m: [x for p in parts for x in p.scores[m]] for m in methods},
        described=described,
        curves={f"fold {k} {name}": curve for k, p in enumerate(parts, 1) for name, curve in p.curves.items()},
    )


def assemble(request: VerifyRequest, loaded, parts: list[HeldOutEdits], pooled: HeldOutEdits, size: int) -> dict[str, Any]:
    """metrics.json for `parts` (one split, or the folds) and `pooled`, their rows as one set."""
    metrics: dict[str, Any] = {
        "editor": pooled.described,
        "data": data_summary(request, loaded, parts, size),
        "tasks": task_table(pooled.held, pooled.scores),
        "overall": {method: per_task(("all", v) for v in values)["all"] for method, values in pooled.scores.items()},
        "rows": row_table(pooled.held, pooled.scores),
    }
    if len(parts) > 1:
        metrics["folds"] = [fold_summary(k, p) for k, p in enumerate(parts, 1)]
    metrics["findings"] = findings(metrics["tasks"], metrics.get("folds"))
    return metrics


def fold_summary(k: int, part: HeldOutEdits) -> dict[str, Any]:
    tasks = task_table(part.held, part.scores)
    return {
        "fold": k,
        "train_rows": len(part.train_rows),
        "held_out_rows": len(part.held),
        "held_out_sources": sorted({t.source_key for t in part.held}),
        "tasks": {task: {"n": row["n"], **{m: round(row[m]["l1"], 5) for m in part.scores}} for task, row in tasks.items()},
        "train_seconds": part.described.get("train_seconds"),
    }


def task_table(held: list[Triplet], scores: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    table: dict[str, dict[str, Any]] = {}
    for method, values in scores.items():
        for task, means in per_task((t.task, v) for t, v in zip(held, values)).items():
            n = means.pop("n")
            table.setdefault(task, {"n": n})[method] = means
    for task, row in table.items():
        rows = [i for i, t in enumerate(held) if t.task == task]
        row["editor_wins"] = sum(scores["editor"][i]["l1"] < scores["identity"][i]["l1"] for i in rows)
        if SHUFFLED in scores:  # rows where the real pairing lands closer than the shuffled one
            row["editor_beats_control"] = sum(scores["editor"][i]["l1"] < scores[SHUFFLED][i]["l1"] for i in rows)
    return table


def row_table(held: list[Triplet], scores: dict[str, list[dict[str, float]]]) -> list[dict[str, Any]]:
    """Each held-out row's L1 per method: with a handful of rows per task, a mean can rest on one."""
    return [
        {"sample_id": t.sample_id, "task": t.task, "instruction": t.instruction,
         "l1": {method: round(values[i]["l1"], 5) for method, values in scores.items()}}
        for i, t in enumerate(held)
    ]


def findings(tasks: dict[str, Any], folds: list[dict[str, Any]] | None = None) -> list[str]:
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
            line += (f"; shuffled-instruction control {sh:.4f} ({'worse' if sh > ed else 'not worse'} than the real pairing, "
                     f"which is closer on {row['editor_beats_control']} of {row['n']} rows)")
        line += f"; editor closer than identity on {row['editor_wins']} of {row['n']} rows"
        if folds:
            line += "; " + fold_agreement(task, folds)
        lines.append(line)
    return lines


def fold_agreement(task: str, folds: list[dict[str, Any]]) -> str:
    """In how many folds the task's comparisons come out the pooled way: one photo can carry a mean."""
    seen = [f["tasks"][task] for f in folds if task in f["tasks"]]
    text = f"editor below identity in {sum(r['editor'] < r['identity'] for r in seen)} of {len(seen)} folds"
    with_control = [r for r in seen if SHUFFLED in r]
    if with_control:
        text += f", control worse in {sum(r[SHUFFLED] > r['editor'] for r in with_control)} of {len(with_control)}"
    return text


def data_summary(request: VerifyRequest, loaded, parts: list[HeldOutEdits], size: int) -> dict[str, Any]:
    held = [t for p in parts for t in p.held]
    return {
        "folder": str(request.folder),
        "rows": request.rows,
        "kind": loaded.rows_kind,
        "files": [str(p) for p in loaded.files],
        "triplets": len(loaded.triplets),
        "skipped": dict(loaded.skipped),
        "size": size,
        "folds": len(parts),
        "train_rows": len(parts[0].train_rows) if len(parts) == 1 else None,
        "held_out_rows": len(held),
        "train_sources": sorted({t.source_key for t in parts[0].train_rows}) if len(parts) == 1 else None,
        "held_out_sources": sorted({t.source_key for t in held}),
        "held_out_samples": [t.sample_id for t in held],
    }


def judge_outputs(cfg: dict[str, Any], held: list[Triplet], sources: list[np.ndarray], edited: list[np.ndarray], log) -> dict[str, Any] | None:
    """VIEScore of the editor's outputs per task, when the config names a judge."""
    from filters.judge.stage import make_judge

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


def write_outputs(out: Path, metrics: dict[str, Any], edits: HeldOutEdits, cfg, log) -> None:
    from editor.plots import write_gallery, write_loss_curve

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "metrics.json", (json.dumps(metrics, indent=1) + "\n").encode())
    if edits.curves:
        write_loss_curve(out / "loss_curve.png", edits.curves, title=f"verify: {metrics['editor']['kind']} editor")
    predictions, scores = edits.predictions, edits.scores
    columns = ["source", "target", "editor", *([SHUFFLED] if SHUFFLED in predictions else []), "mean_edit"]
    examples = []
    for index in gallery_rows(edits.held, int(cfg["editor"]["gallery_rows"])):
        t = edits.held[index]
        images = {"source": predictions["identity"][index], "target": edits.targets[index]}
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
    """Up to `limit` rows, taking tasks in turn so each task shows, and within a task photos in
    turn so pooled folds do not all show the first fold's photo."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(held):
        by_task.setdefault(t.task, []).append(i)
    for task, indices in by_task.items():
        seen: dict[str, int] = {}
        rank = {}
        for i in indices:
            rank[i] = seen[held[i].source_key] = seen.get(held[i].source_key, -1) + 1
        indices.sort(key=lambda i: (rank[i], i))
    picked: list[int] = []
    while len(picked) < limit and any(by_task.values()):
        for task in sorted(by_task):
            if by_task[task] and len(picked) < limit:
                picked.append(by_task[task].pop(0))
    return picked
