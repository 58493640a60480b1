"""People's verdicts on a run's candidates, as `calibrate` reads them: RUN/review/verdicts.jsonl,
one JSON object a line ({"sample_id", "run" (the run's config_hash), "verdict": keep|reject,
"score", "note", "task", "reviewer", "at"}), the latest line per sample_id winning.

`load_verdicts` is the one entry point; it refuses a missing or empty file and a line that is not
a verdict, each with one line naming it. Whether the verdicts are of this run is the caller's
check (`calibration.check_same_run`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

KEEP, REJECT = "keep", "reject"


class VerdictError(ValueError):
    """The verdicts cannot be used; the message is one line naming the file and what is wrong."""


@dataclass(frozen=True)
class Verdict:
    sample_id: str
    run: str
    verdict: str
    task: str
    score: int | None = None
    note: str = ""
    reviewer: str | None = None
    at: str = ""


def verdicts_file(run_dir: Path) -> Path:
    return Path(run_dir) / "review" / "verdicts.jsonl"


def _parse(line: str, where: str) -> Verdict:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as exc:
        raise VerdictError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(item, dict):
        raise VerdictError(f"{where}: expected a JSON object")
    for key in ("sample_id", "run", "task"):
        if not isinstance(item.get(key), str) or not item[key]:
            raise VerdictError(f"{where}: {key!r} must be a non-empty string")
    if item.get("verdict") not in (KEEP, REJECT):
        raise VerdictError(f"{where}: 'verdict' must be {KEEP!r} or {REJECT!r}, got {item.get('verdict')!r}")
    return Verdict(
        item["sample_id"], item["run"], item["verdict"], item["task"], item.get("score"),
        item.get("note") or "", item.get("reviewer"), item.get("at") or "",
    )


def load_verdicts(run_dir: Path) -> dict[str, Verdict]:
    """The latest verdict per sample_id."""
    path = verdicts_file(run_dir)
    if not path.is_file():
        raise VerdictError(f"{path}: no verdicts (review the run first)")
    verdicts: dict[str, Verdict] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                verdict = _parse(line, f"{path}:{number}")
                verdicts[verdict.sample_id] = verdict  # a later line is a revised verdict
    if not verdicts:
        raise VerdictError(f"{path}: empty, no verdicts")
    return verdicts
