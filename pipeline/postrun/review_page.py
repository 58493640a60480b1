"""The review page of a run: RUN/review/index.html, one card per sampled candidate (the report's
card: source, target, mask, before/after, both instructions, gate values and verdicts, the judge's
scores), thumbnails under RUN/review/thumbs/, and sample.json. Static and offline: no CDN, no
external font or script. A run on a store has its page drawn in a local folder (the one the
review server serves) and put into RUN/review/ on the store."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.core.run_dir import RunDir, StoredFile, atomic_write
from pipeline.postrun.report import load_rows, read_selection, row_card
from pipeline.postrun.report_html import CSS, esc
from pipeline.postrun.review_sample import choose_sample, write_sample
from pipeline.postrun.review_script import REVIEW_CSS, REVIEW_SCRIPT
from pipeline.postrun.verdicts import Run, review_dir, run_id, verdicts_file

KEYS = (("j", "next"), ("k", "previous"), ("y", "keep"), ("n", "reject"), ("1-5", "score"), ("0", "no score"),
        ("c", "note"), ("g", "gates"))


class ReviewError(ValueError):
    """A run that cannot be reviewed (no manifest, no candidate rows); the message says which."""


def _section(number: int, total: int, meta: dict[str, str], card_html: str) -> str:
    return (
        f"<section class='rv' data-sid='{esc(meta['sample_id'])}' data-task='{esc(meta['task'])}'>"
        f"<div class='rvbar'><b>{number} / {total}</b> · <b>{esc(meta['task'])}</b> · gates: {esc(meta['status'])}"
        " · your verdict: <span class='rv-state'>not reviewed</span></div>"
        f"{card_html}<div class='rv-note hidden'><input type='text' maxlength='4000' "
        "placeholder='note: Enter saves, Esc closes'></div></section>"
    )


def _document(run: RunDir, data: dict, sections: list[str]) -> str:
    # JSON inside <script> must not close the element early
    payload = json.dumps(data, ensure_ascii=False).replace("</", "<\\/")
    keys = " ".join(f"<kbd>{esc(k)}</kbd> {esc(what)}" for k, what in KEYS)
    header = (
        f"<b>Review: {esc(run.name)}</b><span id='progress'>reviewed 0 of {len(sections)}</span>"
        "<label>reviewer <input id='reviewer' type='text' maxlength='80'></label>"
        "<button id='download' type='button'>download verdicts.jsonl</button>"
        f"<span class='keys'>{keys}</span><span id='status'></span>"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Review: {esc(run.name)}</title><style>{CSS}{REVIEW_CSS}</style></head><body>"
        f"<header>{header}</header><main>{''.join(sections)}</main>"
        f"<script type='application/json' id='review-data'>{payload}</script>"
        f"<script>{REVIEW_SCRIPT}</script></body></html>"
    )


def write_review_page(run: Run, size: int, seed: int, tasks: list[str] | None = None,
                      folder: Path | None = None) -> tuple[Path | StoredFile, int]:
    """Choose the sample, write sample.json, the thumbnails and index.html; return index.html (as
    the run gives it out) and the number of cards. A local run's page is drawn in RUN/review/; a
    run on a store's in `folder` (a local folder the caller keeps, e.g. to serve it), then put on
    the store beside the verdicts, which it leaves alone."""
    run = RunDir(run)
    if run.store.remote and folder is None:
        raise ValueError("a run on a store has its review page drawn in a local folder first")
    ident = run_id(run)
    chosen = choose_sample(run, size, seed, tasks)
    if not chosen:
        which = f" of task {', '.join(tasks)}" if tasks else ""
        raise ReviewError(f"{run} has no candidate rows{which} to review")
    out = Path(folder) if run.store.remote else review_dir(run)
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    write_sample(out, ident, seed, chosen)
    rows = {r["sample_id"]: r for r in load_rows(run, {m["sample_id"] for m in chosen})}
    selection = read_selection(run)
    sections = [
        _section(i, len(chosen), meta, row_card(rows[meta["sample_id"]], out / "thumbs", selection))
        for i, meta in enumerate(chosen, 1)
    ]
    data = {"run": ident, "verdicts": str(verdicts_file(run))}
    index = out / "index.html"
    atomic_write(index, _document(run, data, sections).encode())
    if not run.store.remote:
        return index, len(chosen)
    run.store.remove_folder("review/thumbs")  # an earlier sample's pictures
    run.store.put_folder(out, "review", skip=("verdicts.jsonl",))  # the verdicts are the server's to write
    return run.store.file("review/index.html"), len(chosen)
