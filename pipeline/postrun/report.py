"""A static HTML report of a run folder: summary, funnel and score charts, one paginated page of
cards per task, an errors table. Relative links only, so the folder can be copied and opened
from disk; a sample of rows per task keeps large runs small. It reads the run's committed shards
only; a run on a store gets its report under RUN/report on the store (drawn in a local temporary
folder, then uploaded)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from pipeline.core.run_dir import RunDir, StoredFile
from pipeline.core.run_store import read_parquet
from pipeline.postrun.contact_sheet import mask_overlay
from pipeline.postrun.diversity import HEADER as DIVERSITY_HEADER
from pipeline.postrun.diversity import table_rows as diversity_rows
from pipeline.postrun.judge_overlay import apply_to_rows, load_overlay
from pipeline.postrun.report_html import (
    bar_chart,
    card,
    esc,
    histogram_svg,
    page,
    table,
)

THUMB_PX = 256
ERROR_TABLE_ROWS = 2000
LIGHT_COLUMNS = ["sample_id", "task", "status", "reason", "source_uri"]
PROVENANCE_KEYS = ("model", "revision", "dtype", "backend")


def _order(sample_id: str) -> str:
    # deterministic and unrelated to input order, so a sample spreads over the run
    return hashlib.sha256(sample_id.encode()).hexdigest()


def _read(run: RunDir, rel: str, columns: list[str] | None = None):
    return read_parquet(run.store.file(rel), columns)


def _read_json(path: Path | StoredFile) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _slug(task: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", task) or "task"


def _sample_ids(run: RunDir, per_task: int) -> dict[str, list[str]]:
    """Per task, at most `per_task` ids for each status, lowest hash first; reads light columns only."""
    seen: dict[tuple[str, str], list[str]] = {}
    for folder in ("candidates", "errors"):
        for rel in run.committed_files(folder):
            t = _read(run, rel, ["sample_id", "task", "status"])
            for sid, task, status in zip(*(t.column(c).to_pylist() for c in ("sample_id", "task", "status"))):
                bucket = seen.setdefault((task, status), [])
                bucket.append(sid)
                if len(bucket) > 4 * per_task:  # keep memory bounded on huge runs
                    bucket.sort(key=_order)
                    del bucket[per_task:]
    chosen: dict[str, list[str]] = {}
    for (task, _status), ids in seen.items():
        chosen.setdefault(task, []).extend(sorted(ids, key=_order)[:per_task])
    return chosen


def load_rows(run_dir: RunDir | Path | str, wanted: set[str]) -> list[dict[str, Any]]:
    """The wanted rows, candidates with the judge overlay's judgements where `rejudge` made one."""
    run = RunDir(run_dir)
    overlay = load_overlay(run)
    rows = []
    for folder in ("candidates", "errors"):
        for rel in run.committed_files(folder):
            ids = _read(run, rel, ["sample_id"]).column("sample_id").to_pylist()
            if wanted.isdisjoint(ids):
                continue
            part = [r for r in _read(run, rel).to_pylist() if r["sample_id"] in wanted]
            rows += apply_to_rows(part, overlay.entries(run.store.file(rel))) if overlay and folder == "candidates" else part
    return rows


def _decode(value: dict[str, Any] | None) -> Image.Image | None:
    if not value or not value.get("bytes"):
        return None
    return Image.open(io.BytesIO(value["bytes"])).convert("RGB")


def _write_thumbs(row: dict[str, Any], thumb_dir: Path) -> dict[str, str]:
    source, target = _decode(row.get("source_image")), _decode(row.get("target_image"))
    if source is None or target is None:
        return {}
    images = {"source": source, "target": target, "overlay": mask_overlay(source, _decode(row.get("mask")))}
    links = {}
    for kind, image in images.items():
        image = image.copy()
        image.thumbnail((THUMB_PX, THUMB_PX))
        name = f"{row['sample_id']}_{kind}.jpg"
        image.save(thumb_dir / name, quality=85)
        links[kind] = f"thumbs/{name}"
    return links


def read_selection(run_dir: RunDir | Path | str) -> dict[str, dict[str, Any]]:
    run = RunDir(run_dir)
    rel = "selection/selection.parquet"
    if not run.store.exists(rel):
        return {}
    return {r["sample_id"]: r for r in _read(run, rel).to_pylist()}


def _score(row: dict[str, Any], chosen: dict[str, Any] | None) -> float | None:
    if chosen and chosen.get("score") is not None:
        return float(chosen["score"])
    try:
        value = json.loads(row.get("scores") or "{}").get("gate_score")
    except ValueError:
        return None
    return None if value is None else float(value)


def row_card(row: dict[str, Any], thumb_dir: Path, selection: dict[str, dict[str, Any]]) -> str:
    """A row's card with its thumbnails written to thumb_dir (linked as thumbs/NAME), its ranking
    score and whether the selection kept it."""
    picked = selection.get(row["sample_id"])
    return card(row, _write_thumbs(row, thumb_dir), _score(row, picked), bool(picked and picked.get("selected")))


def _all_scores(run: RunDir, selection: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Every candidate's ranking score per task: from the selection when it ran, else gate_score."""
    out: dict[str, list[float]] = {}
    if selection:
        for r in selection.values():
            if r.get("score") is not None:
                out.setdefault(r["task"], []).append(float(r["score"]))
        return out
    for rel in run.committed_files("candidates"):
        t = _read(run, rel, ["task", "scores"])
        for task, scores in zip(t.column("task").to_pylist(), t.column("scores").to_pylist()):
            value = json.loads(scores or "{}").get("gate_score")
            if value is not None:
                out.setdefault(task, []).append(float(value))
    return out


def _models_seen(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen = set()
    for row in rows:
        try:
            stages = json.loads(row.get("provenance") or "{}").get("stages", {})
        except ValueError:
            continue
        for stage, info in stages.items():
            if isinstance(info, dict):
                found = ", ".join(f"{k}={info[k]}" for k in PROVENANCE_KEYS if info.get(k) is not None)
                if found:
                    seen.add((stage, found))
    return sorted(seen)


def _nav(tasks: list[str]) -> str:
    links = ["<a href='index.html'>summary</a>", "<a href='errors.html'>errors</a>"]
    links += [f"<a href='{esc(_slug(t))}-1.html'>{esc(t)}</a>" for t in tasks]
    return "".join(links)


def _task_pages(out: Path, task: str, cards: list[str], page_size: int, nav: str, note: str) -> int:
    pages = [cards[i : i + page_size] for i in range(0, len(cards), page_size)] or [[]]
    for number, chunk in enumerate(pages, 1):
        links = " ".join(
            f"<b>{n}</b>" if n == number else f"<a href='{esc(_slug(task))}-{n}.html'>{n}</a>" for n in range(1, len(pages) + 1)
        )
        controls = (
            "<div class='controls'>show: "
            + "".join(f"<button data-filter='{f}'>{f}</button>" for f in ("all", "kept", "ok", "rejected", "error"))
            + " sort by score: <button data-sort='desc'>high first</button><button data-sort='asc'>low first</button></div>"
        )
        body = f"<p>{esc(note)}</p><p class='nav'>pages: {links}</p>{controls}<div class='cards'>{''.join(chunk)}</div>"
        (out / f"{_slug(task)}-{number}.html").write_text(page(f"{task} — page {number}", nav, body, script=True))
    return len(pages)


def _errors_page(run: RunDir, out: Path, nav: str) -> int:
    rows, counts, total = [], {}, 0
    for rel in run.committed_files("errors"):
        for r in _read(run, rel, LIGHT_COLUMNS).to_pylist():
            total += 1
            key = (r["task"], r["status"], (r["reason"] or "").split(":")[0])
            counts[key] = counts.get(key, 0) + 1
            if len(rows) < ERROR_TABLE_ROWS:
                rows.append([r["task"], r["status"], r["reason"], r["source_uri"], r["sample_id"]])
    summary = table(["task", "status", "reason (kind)", "rows"], [[*k, v] for k, v in sorted(counts.items())])
    shown = f"showing {len(rows)} of {total} rows"
    body = f"<h2>By reason</h2>{summary}<h2>Rows</h2><p>{shown}</p>" + table(
        ["task", "status", "reason", "source", "sample_id"], rows
    )
    (out / "errors.html").write_text(page("errors and skipped rows", nav, body))
    return total


def _index(run: RunDir, out: Path, nav: str, tasks: list[str], rows: list[dict[str, Any]], scores: dict, pages: dict) -> None:
    manifest = _read_json(run.manifest_file)
    stats = _read_json(run.store.file("stats/run.json"))
    statuses = ("ok", "rejected", "error", "skipped")
    task_counts = manifest.get("tasks", {})
    count_rows = [
        [t, *[task_counts.get(t, {}).get(s, 0) for s in statuses], manifest.get("task_seconds", {}).get(t, ""),
         manifest.get("task_cpu_seconds", {}).get(t, ""), pages.get(t, 0)]
        for t in tasks
    ]
    parts = [
        f"<p>run: {esc(run.root)} · profile {esc(manifest.get('profile'))} · inputs {esc(manifest.get('inputs'))}"
        f" · complete {esc(manifest.get('complete'))} · rows {esc(manifest.get('rows'))}</p>",
        "<h2>Counts per task</h2>",
        table(["task", *statuses, "stage s", "cpu s", "pages"], count_rows),
        "<h2>Funnel per task</h2>",
    ]
    for task, funnel in sorted(manifest.get("funnel", {}).items()):
        steps = [(k, funnel.get(k, 0)) for k in ("generated", "passed_all_gates", "judged", "ranked", "kept") if k in funnel]
        parts.append(bar_chart(f"{task} (ranked by {funnel.get('score_kind', '?')})", steps))
    diversity = manifest.get("instruction_diversity")
    if diversity:
        parts.append(f"<h2>Instruction diversity</h2><p>over the {esc(' and '.join(diversity['over']))} rows; mllm and template are "
                     "shares of rows, unique the share of distinct English instructions, distinct-n over English words</p>")
        parts.append(table(list(DIVERSITY_HEADER), diversity_rows(diversity["tasks"])))
    parts.append("<h2>Score histograms</h2><div class='hists'>")
    parts += [histogram_svg(task, scores.get(task, [])) for task in tasks]
    parts.append("</div><h2>Models and versions seen (sampled rows)</h2>")
    parts.append(table(["stage", "model / backend"], _models_seen(rows)))
    timings = [[k, v] for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    parts.append("<h2>Timings</h2>" + table(["measure", "value"], timings))
    config_text = run.store.read_text("config.yaml") if run.store.exists("config.yaml") else "(no config.yaml)"
    parts.append(f"<h2>Config</h2><pre>{esc(config_text)}</pre>")
    (out / "index.html").write_text(page(f"Run report: {run.name}", nav, "".join(parts)))


def write_report(run_dir: RunDir | Path | str, out: Path | None = None, per_task: int = 60, page_size: int = 30) -> Path | StoredFile:
    """Write the report and return its index.html: in `out`, or else in RUN/report (a run on a
    store: drawn here, then uploaded there)."""
    run = RunDir(run_dir)
    if out is None and run.store.remote:
        with tempfile.TemporaryDirectory(prefix="report-") as tmp:
            _write_report(run, Path(tmp), per_task, page_size)
            run.store.remove_folder("report")
            run.store.put_folder(Path(tmp), "report")
        return run.store.file("report/index.html")
    return _write_report(run, Path(out) if out is not None else run.root / "report", per_task, page_size)


def _write_report(run: RunDir, out: Path, per_task: int, page_size: int) -> Path:
    thumb_dir = out / "thumbs"
    thumb_dir.mkdir(parents=True, exist_ok=True)
    selection = read_selection(run)
    chosen = _sample_ids(run, per_task)
    rows = load_rows(run, {sid for ids in chosen.values() for sid in ids})
    tasks = sorted(set(chosen) | set(_read_json(run.manifest_file).get("tasks", {})))
    nav = _nav(tasks)
    by_task: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: _order(r["sample_id"])):
        by_task.setdefault(row["task"], []).append(row)
    pages = {}
    for task in tasks:
        cards = [row_card(row, thumb_dir, selection) for row in by_task.get(task, [])]
        note = f"a sample of at most {per_task} rows per status, ordered by a hash of sample_id"
        pages[task] = _task_pages(out, task, cards, page_size, nav, note)
    _errors_page(run, out, nav)
    _index(run, out, nav, tasks, rows, _all_scores(run, selection), pages)
    return out / "index.html"
