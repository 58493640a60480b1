"""How varied a run's instructions are, per task: the share written by an MLLM and by templates,
the unique-instruction ratio, distinct-1 and distinct-2 over the English words (distinct n-grams
over all n-grams), and the mean length in each language (English in words, Chinese in
characters). A run counts the rows its captioner takes (`captioner.rows`: the `ok` rows, the
ones a model is trained on; every candidate on the tiny profile); the dataset card counts the
rows it exports. The manifest, the report and the dataset card all show it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.core.run_store import read_parquet
from pipeline.engine.manifest import text_table

COLUMNS = ["task", "status", "instruction_en", "instruction_zh", "instruction_source"]
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
HEADER = ("task", "rows", "mllm", "template", "unique", "distinct-1", "distinct-2", "words en", "chars zh")


class Diversity:
    """Accumulates rows one at a time; memory grows with the distinct instructions and n-grams."""

    def __init__(self, statuses: tuple[str, ...] = (schema.OK,)) -> None:
        self.statuses = statuses
        self._tasks: dict[str, dict[str, Any]] = {}

    def add(self, task: str, en: str | None, zh: str | None, source: str | None) -> None:
        acc = self._tasks.setdefault(
            task, {"rows": 0, "mllm": 0, "instructions": set(), "uni": set(), "bi": set(), "n_uni": 0, "n_bi": 0, "words": 0, "chars": 0}
        )
        words = _WORD.findall((en or "").lower())
        acc["rows"] += 1
        acc["mllm"] += source == "mllm"  # rows from before the column (None) count as templates
        acc["instructions"].add(" ".join(words))
        acc["uni"].update(words)
        acc["bi"].update(zip(words, words[1:]))
        acc["n_uni"] += len(words)
        acc["n_bi"] += max(0, len(words) - 1)
        acc["words"] += len(words)
        acc["chars"] += len("".join((zh or "").split()))

    def add_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row.get("status") in self.statuses:
                self.add(row["task"], row.get("instruction_en"), row.get("instruction_zh"), row.get("instruction_source"))

    def result(self) -> dict[str, dict[str, Any]]:
        return {task: _finish(acc) for task, acc in sorted(self._tasks.items())}


def _finish(acc: dict[str, Any]) -> dict[str, Any]:
    rows = acc["rows"]
    ratio = lambda part, whole: round(part / whole, 3) if whole else None  # noqa: E731
    return {
        "rows": rows,
        "mllm_share": ratio(acc["mllm"], rows),
        "template_share": ratio(rows - acc["mllm"], rows),
        "unique_ratio": ratio(len(acc["instructions"]), rows),
        "distinct_1": ratio(len(acc["uni"]), acc["n_uni"]),
        "distinct_2": ratio(len(acc["bi"]), acc["n_bi"]),
        "mean_words_en": round(acc["words"] / rows, 1) if rows else None,
        "mean_chars_zh": round(acc["chars"] / rows, 1) if rows else None,
    }


def counted_statuses(cfg: dict[str, Any]) -> tuple[str, ...]:
    """The statuses the run's captioner takes (a config from before the captioner: ok)."""
    rows = (cfg.get("captioner") or {}).get("rows", "ok")
    return schema.CANDIDATE_STATUSES if rows == "candidates" else (schema.OK,)


def run_diversity(run_dir: RunDir | Path | str, statuses: tuple[str, ...] = (schema.OK,)) -> dict[str, dict[str, Any]]:
    """Per task, over the run's committed candidates of `statuses`; reads the instruction columns only."""
    acc = Diversity(statuses)
    run = RunDir(run_dir)
    for rel in run.committed_files("candidates"):
        with run.store.open(rel) as handle:
            names = pq.read_schema(handle).names
        acc.add_rows(read_parquet(run.store.file(rel), [c for c in COLUMNS if c in names]).to_pylist())
    return acc.result()


def merge_into_manifest(run_dir: RunDir | Path | str, cfg: dict[str, Any]) -> dict[str, Any]:
    """`manifest.json` gains `instruction_diversity`: per task, and which statuses were counted."""
    statuses = counted_statuses(cfg)
    record = {"over": list(statuses), "tasks": run_diversity(run_dir, statuses)}
    run = RunDir(run_dir)
    manifest = json.loads(run.manifest_file.read_text()) if run.manifest_file.exists() else {}
    if manifest.get("instruction_diversity") != record:
        manifest["instruction_diversity"] = record
        atomic_write(run.manifest_file, json.dumps(manifest, indent=1).encode())
    return manifest


def table_rows(by_task: dict[str, dict[str, Any]]) -> list[list[str]]:
    """One row of text per task, in HEADER's order (for the console, the report and the card)."""
    shown = lambda v: "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    keys = ("rows", "mllm_share", "template_share", "unique_ratio", "distinct_1", "distinct_2", "mean_words_en", "mean_chars_zh")
    return [[task, *(shown(d[k]) for k in keys)] for task, d in by_task.items()]


def diversity_table(by_task: dict[str, dict[str, Any]]) -> str:
    return text_table([list(HEADER), *table_rows(by_task)])
