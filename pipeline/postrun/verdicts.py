"""People's verdicts on a run's candidate rows: the one reader and validator of
RUN/review/verdicts.jsonl, shared by the review page's server, `review import` and `calibrate`.

The run is local or on a store (`RunDir`); its candidates are read through the run's store, its
committed files only.

One JSON line per verdict, a fixed contract:
  {"sample_id": str, "run": <manifest.json's config_hash>, "verdict": "keep"|"reject",
   "score": int 1-5 or null, "note": str, "task": str, "reviewer": str or null, "at": ISO-8601 UTC}
The file only grows (a changed mind is a new line); the last line for a sample_id wins."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Mapping

from pipeline.core.run_dir import RunDir, StoredFile, atomic_write
from pipeline.core.run_store import read_parquet

Run = RunDir | Path | str
File = Path | StoredFile  # as the run's store gives it out: a Path on a local run
VERDICTS_NAME = "review/verdicts.jsonl"

VERDICTS = ("keep", "reject")
FIELDS = ("sample_id", "run", "verdict", "score", "note", "task", "reviewer", "at")
MAX_NOTE_CHARS = 4000


class VerdictError(ValueError):
    """A verdict, a verdicts file or a run folder that does not hold up; the message names it."""


@dataclass(frozen=True)
class Verdict:
    sample_id: str
    run: str
    verdict: str
    score: int | None
    note: str
    task: str
    reviewer: str | None
    at: str

    @property
    def keep(self) -> bool:
        return self.verdict == "keep"

    def to_line(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    def same_judgement(self, other: Verdict) -> bool:
        """Whether two verdicts say the same thing about a row, whoever wrote them and when."""
        return (self.verdict, self.score, self.note) == (other.verdict, other.score, other.note)


def review_dir(run: Run) -> File:
    return RunDir(run).store.file("review")


def verdicts_file(run: Run) -> File:
    return RunDir(run).store.file(VERDICTS_NAME)


def run_id(run: Run) -> str:
    """The run's config_hash from manifest.json: what every verdict of this run carries as `run`."""
    run = RunDir(run)
    path = run.manifest_file
    if not path.exists():
        raise VerdictError(f"{run} is not a finished run folder (no manifest.json)")
    try:
        value = json.loads(path.read_text()).get("config_hash")
    except (OSError, ValueError) as exc:
        raise VerdictError(f"{path}: not a finished run's manifest ({type(exc).__name__})") from None
    if not isinstance(value, str) or not value:
        raise VerdictError(f"{path} has no config_hash")
    return value


def candidate_tasks(run: Run) -> dict[str, str]:
    """sample_id -> task of every committed candidate row (ok or rejected) of the run; light columns only."""
    run = RunDir(run)
    out: dict[str, str] = {}
    for rel in run.committed_files("candidates"):
        table = read_parquet(run.store.file(rel), columns=["sample_id", "task"])
        out.update(zip(table.column("sample_id").to_pylist(), table.column("task").to_pylist()))
    return out


def parse_verdict(value: Any, run: str, tasks: Mapping[str, str]) -> Verdict:
    """One verdict object checked against the contract, the run's id and its rows (sample_id -> task)."""
    if not isinstance(value, dict):
        raise VerdictError(f"a verdict is a JSON object, not {type(value).__name__}")
    missing = [f for f in FIELDS if f not in value]
    extra = sorted(set(value) - set(FIELDS))
    if missing or extra:
        raise VerdictError("; ".join(
            ([f"missing field(s) {', '.join(missing)}"] if missing else []) + ([f"unknown field(s) {', '.join(extra)}"] if extra else [])
        ))
    sid = value["sample_id"]
    if not isinstance(sid, str) or not sid:
        raise VerdictError("sample_id must be a non-empty string")
    if value["run"] != run:
        raise VerdictError(f"sample_id {sid}: a verdict of another run ({value['run']!r}; this run is {run!r})")
    if sid not in tasks:
        raise VerdictError(f"unknown sample_id {sid}: not a reviewable row of this run")
    if value["verdict"] not in VERDICTS:
        raise VerdictError(f"sample_id {sid}: verdict must be 'keep' or 'reject', not {value['verdict']!r}")
    score = value["score"]
    if score is not None and (type(score) is not int or not 1 <= score <= 5):
        raise VerdictError(f"sample_id {sid}: score must be an integer 1-5 or null, not {score!r}")
    if not isinstance(value["note"], str) or len(value["note"]) > MAX_NOTE_CHARS:
        raise VerdictError(f"sample_id {sid}: note must be a string of at most {MAX_NOTE_CHARS} characters")
    if value["task"] != tasks[sid]:
        raise VerdictError(f"sample_id {sid}: task {value['task']!r}, but the row's task is {tasks[sid]!r}")
    if value["reviewer"] is not None and not isinstance(value["reviewer"], str):
        raise VerdictError(f"sample_id {sid}: reviewer must be a string or null")
    _check_utc(sid, value["at"])
    return Verdict(**{f: value[f] for f in FIELDS})


def _check_utc(sid: str, at: Any) -> None:
    problem = f"sample_id {sid}: at must be an ISO-8601 UTC time (2026-01-31T12:00:00Z), not {at!r}"
    if not isinstance(at, str):
        raise VerdictError(problem)
    try:
        # Python 3.10's fromisoformat does not take the 'Z' that JavaScript's toISOString writes
        moment = datetime.fromisoformat(at[:-1] + "+00:00" if at.endswith("Z") else at)
    except ValueError:
        raise VerdictError(problem) from None
    if moment.utcoffset() != timedelta(0):
        raise VerdictError(problem)


def read_verdicts(path: File | str, run: str, tasks: Mapping[str, str], allow_changes: bool) -> list[Verdict]:
    """Every verdict of a file, in file order, all checked before any is returned: a broken line
    raises VerdictError naming the file and line. `allow_changes=False` (an import) also refuses
    two lines for one sample_id that disagree."""
    path = Path(path) if isinstance(path, str) else path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise VerdictError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    out: list[Verdict] = []
    first_line: dict[str, tuple[int, Verdict]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            verdict = parse_verdict(json.loads(line), run, tasks)
        except ValueError as exc:  # json.JSONDecodeError and VerdictError alike
            kind = "not JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise VerdictError(f"{path} line {number}: {kind}") from None
        earlier = first_line.setdefault(verdict.sample_id, (number, verdict))
        if not allow_changes and not earlier[1].same_judgement(verdict):
            raise VerdictError(f"{path} line {number}: sample_id {verdict.sample_id} disagrees with line {earlier[0]}")
        out.append(verdict)
    return out


def latest(verdicts: list[Verdict]) -> dict[str, Verdict]:
    """The last verdict per sample_id."""
    return {v.sample_id: v for v in verdicts}


def load_verdicts(run: Run) -> dict[str, Verdict]:
    """sample_id -> the latest verdict on it, from RUN/review/verdicts.jsonl, every line checked
    against the run (its config_hash and its candidate rows). VerdictError when the file is
    missing or a line is broken; an empty file gives {}."""
    path = verdicts_file(run)
    if not path.exists():
        raise VerdictError(f"{path}: no verdicts (review the run with `python -m pipeline review {run}`)")
    return latest(read_verdicts(path, run_id(run), candidate_tasks(run), allow_changes=True))


def append_verdict(run: Run, verdict: Verdict, working: Path | None = None) -> None:
    """One verdict at the end of the run's verdicts file, saved before this returns. A local run's
    file is appended to. A store cannot append: a run on one keeps a local working copy
    (`working`, which the review server also serves), and each verdict puts the whole file, the
    copy plus the new line, in one PUT; the copy changes only once the store has it, so a failed
    upload leaves both as they were."""
    run = RunDir(run)
    if not run.store.remote:
        path = verdicts_file(run)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(verdict.to_line() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        return
    if working is None:
        raise ValueError("a run on a store appends through a local working copy of its verdicts file")
    before = working.read_bytes() if working.exists() else b""
    if before and not before.endswith(b"\n"):
        before += b"\n"
    data = before + (verdict.to_line() + "\n").encode()
    run.store.write(VERDICTS_NAME, data)
    atomic_write(working, data)


def fetch_verdicts(run: Run, working: Path) -> None:
    """The run's verdicts file copied to the local working copy (a run on a store), so verdicts
    given earlier are shown by the page and kept by the next upload."""
    run = RunDir(run)
    if run.store.exists(VERDICTS_NAME):
        atomic_write(working, run.store.read_bytes(VERDICTS_NAME))


@dataclass(frozen=True)
class ImportResult:
    new: int  # rows with no verdict before
    changed: int  # rows whose latest verdict said something else
    unchanged: int  # lines that repeat the latest verdict (not written again)


def import_verdicts(run: Run, source: Path) -> ImportResult:
    """Merge a verdicts file (the review page's download, another reviewer's file) into the run's:
    every line of both is checked first, then the new judgements are added in one atomic write,
    so a bad file changes nothing."""
    run = RunDir(run)
    ident, tasks = run_id(run), candidate_tasks(run)
    incoming = latest(read_verdicts(source, ident, tasks, allow_changes=False))
    target = verdicts_file(run)
    current = latest(read_verdicts(target, ident, tasks, allow_changes=True)) if target.exists() else {}
    added = [v for sid, v in incoming.items() if sid not in current or not current[sid].same_judgement(v)]
    if added:  # one whole write (a rename, or one PUT on a store): a store cannot append
        before = target.read_bytes() if target.exists() else b""
        if before and not before.endswith(b"\n"):
            before += b"\n"
        atomic_write(target, before + "".join(v.to_line() + "\n" for v in added).encode())
    new = sum(v.sample_id not in current for v in added)
    return ImportResult(new=new, changed=len(added) - new, unchanged=len(incoming) - len(added))
