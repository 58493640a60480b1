"""The judge overlay: a run's judgements redone without touching its committed shards.

`rejudge` (pipeline/postrun/rejudge.py) writes, per committed candidate shard, the judge-owned
values of its rows: the `judge` record and `scores.viescore`. Everything else in a row (gates,
status, images) is the run's and stays where it is. Layout, under `RUN/overlays/judge/`:

- `<identity>/`: one overlay per judge (the identity hashes the judge's settings, the prompt hash
  and the tasks re-judged), holding `overlay.json` (what it is), and per candidate shard
  `shard-NNNNN.parquet` (sample_id, judge, viescore: JSON strings, viescore null when unscored)
  and `shard-NNNNN.json`, its completion record written last: the identity, the candidate shard it
  was made from (path and sha256) and the overlay file's rows, bytes and sha256;
- `active.json`: the identity of the overlay readers apply, written once that overlay covers
  every committed candidate shard. Until then the previous one (or none: the run's own
  judgements) stays in force, so an interrupted or failed rejudge changes nothing.

A shard's overlay counts only while the candidate shard is still the one its completion record
describes (a regenerated shard has another sha256) and the overlay file passes the cheap check
(size and Parquet footer). Readers of candidates (selection, report, export) apply the active
overlay row by row; selection refuses one that no longer covers every shard, so one ranking never
mixes two judges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from pipeline.core import schema
from pipeline.core.integrity import file_problem
from pipeline.core.run_dir import RunDir, StoredFile
from pipeline.core.run_store import read_parquet

File = Path | StoredFile  # as the run's store gives it out: a Path on a local run

OVERLAY_DIR = "overlays/judge"
OVERLAY_COLUMNS = ("sample_id", "judge", "viescore")
OVERLAY_SCHEMA = pa.schema([pa.field("sample_id", pa.string(), nullable=False), pa.field("judge", pa.string()), pa.field("viescore", pa.string())])

Entries = dict[str, tuple[str, str | None]]  # sample_id -> (judge JSON, viescore JSON or None)


class OverlayIncomplete(RuntimeError):
    """The active overlay no longer covers every committed candidate shard."""


def overlays_root(run: RunDir) -> File:
    return run.store.file(OVERLAY_DIR)


def active_file(run: RunDir) -> File:
    return overlays_root(run) / "active.json"


def overlay_dir(run: RunDir, identity: str) -> File:
    return overlays_root(run) / identity


def info_file(run: RunDir, identity: str) -> File:
    return overlay_dir(run, identity) / "overlay.json"


def shard_file(run: RunDir, identity: str, candidate: Path) -> File:
    return overlay_dir(run, identity) / candidate.name


def record_file(run: RunDir, identity: str, candidate: Path) -> File:
    return overlay_dir(run, identity) / f"{candidate.stem}.json"


def committed_candidates(run: RunDir) -> dict[str, str]:
    """Each committed candidate shard (path relative to the run) -> its recorded sha256."""
    return {f["path"]: f["sha256"] for rec in run.commit_records() for f in rec.get("files", []) if f["path"].startswith("candidates/")}


@dataclass
class JudgeOverlay:
    run: RunDir
    info: dict[str, Any]
    valid: dict[str, dict[str, Any]] = field(default_factory=dict)  # candidate path -> its overlay record
    total: int = 0  # committed candidate shards

    @property
    def complete(self) -> bool:
        return len(self.valid) == self.total

    def describe(self) -> str:
        judge = self.info.get("judge") or {}
        who = " ".join(str(judge[k]) for k in ("backend", "model") if judge.get(k))
        tasks = self.info.get("tasks")
        return f"judge overlay ({who or 'judge'}{', tasks ' + ', '.join(tasks) if tasks else ''}): {len(self.valid)}/{self.total} shards re-judged"

    def require_complete(self) -> None:
        if not self.complete:
            missing = self.total - len(self.valid)
            raise OverlayIncomplete(
                f"{self.describe()}; {missing} shard(s) changed since. Rerun `python -m pipeline rejudge "
                f"{self.run.root}` with the same judge to judge them (or delete {OVERLAY_DIR} to drop the overlay)"
            )

    def entries(self, candidate: File) -> Entries:
        """The overlay of one candidate shard (empty when that shard has none that counts)."""
        record = self.valid.get(self.run.store.rel_of(candidate))  # candidates/shard-NNNNN[.attempt].parquet
        if record is None:
            return {}
        table = read_parquet(self.run.store.file(record["file"]["path"]), list(OVERLAY_COLUMNS))
        return {sid: (judge, vs) for sid, judge, vs in zip(*(table.column(c).to_pylist() for c in OVERLAY_COLUMNS))}

    def fingerprint(self) -> dict[str, Any]:
        """What selection's completion record keeps of the overlay: a changed overlay reselects."""
        return {"identity": self.info.get("identity"), "files": sorted(r["file"]["sha256"] for r in self.valid.values())}


def read_json(path: File) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing or unreadable: as if never written


def counts(run: RunDir, record: dict[str, Any] | None, identity: str, candidate_sha: str) -> bool:
    """Whether a shard's overlay record applies: this judge, this candidate shard, its file intact."""
    return (
        record is not None
        and record.get("identity") == identity
        and (record.get("source") or {}).get("sha256") == candidate_sha
        and file_problem(run, record["file"], full=False) is None
    )


def read_overlay(run: RunDir, identity: str) -> JudgeOverlay | None:
    """One judge's overlay, with the shards it covers; None when there is none."""
    info = read_json(info_file(run, identity))
    if info is None:
        return None
    candidates = committed_candidates(run)
    overlay = JudgeOverlay(run, info, total=len(candidates))
    for rel, sha in candidates.items():
        record = read_json(record_file(run, identity, Path(rel)))
        if counts(run, record, identity, sha):
            overlay.valid[rel] = record
    return overlay


def load_overlay(run: RunDir) -> JudgeOverlay | None:
    """The overlay readers apply (active.json names it); None: the run's own judgements."""
    active = read_json(active_file(run))
    return read_overlay(run, str(active["identity"])) if active and active.get("identity") else None


def unfinished_overlays(run: RunDir) -> list[JudgeOverlay]:
    """Overlays a rejudge started and has not finished (not the active one)."""
    active = (read_json(active_file(run)) or {}).get("identity")
    identities = sorted({rel.split("/")[2] for rel in run.store.walk(OVERLAY_DIR) if rel.count("/") >= 3})  # overlays/judge/<identity>/...
    found = [read_overlay(run, identity) for identity in identities if identity != active]
    return [o for o in found if o is not None]


# --- applying --------------------------------------------------------------------------------


def apply_to_row(row: dict[str, Any], entries: Entries) -> dict[str, Any]:
    """The row with its judge record and scores.viescore from the overlay, where it has them."""
    entry = entries.get(row.get("sample_id"))
    if entry is None:
        return row
    judge, viescore = entry
    pairwise = schema.loads(row.get("judge")).get("pairwise")
    if pairwise is not None and "pairwise" not in judge:  # best of N's ranking is not the judge's to redo
        judge = schema.dumps({**json.loads(judge), "pairwise": pairwise})
    scores = schema.loads(row.get("scores"))
    if viescore:
        scores["viescore"] = json.loads(viescore)
    else:
        scores.pop("viescore", None)  # the new judge could not score it: the old number must not stay
    row["judge"], row["scores"] = judge, schema.dumps(scores)
    return row


def apply_to_rows(rows: list[dict[str, Any]], entries: Entries) -> list[dict[str, Any]]:
    if entries:
        for row in rows:
            apply_to_row(row, entries)
    return rows


def apply_to_table(table: pa.Table, entries: Entries) -> pa.Table:
    """`judge` and `scores` of an Arrow table replaced from the overlay; other columns untouched."""
    if not entries or table.num_rows == 0:
        return table
    rows = apply_to_rows(table.select(["sample_id", "judge", "scores"]).to_pylist(), entries)
    for name in ("judge", "scores"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array([r[name] for r in rows], pa.string()))
    return table
