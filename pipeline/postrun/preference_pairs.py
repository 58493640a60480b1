"""Which candidates make preference pairs (chosen, rejected, why), decided on the light columns
of a run's candidates alone, so no picture is read until the pairs are known.

- `best_of_n`: the N seeds of one edit met in the pairwise judge; each loser (status `rejected`,
  `judge.pairwise.winner` naming another row) is paired with its winner, but only when the winner
  itself is kept: a pair whose chosen side the run threw away would teach the wrong preference.
  `why` is what the judge said when the loser met the winner. A loser that tied with its winner
  (the two orders disagreed, or an answer was refused, malformed or late) pairs with nothing: the
  winner then won by seed order, not by the judge's preference. A copy that did not compete (its
  gates rejected it) pairs with its reason as `why`.
- `rejected_same_edit`: a rejected row (not a best-of-N loser) with the same task, source
  (`source_sha256`) and English instruction as a kept row; `why` is the rejected row's reason.
  Where several kept rows match, the best of them (O, then gate score, then sample_id) is chosen.

Kept means selected when the run has a selection, else status `ok`."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Iterable

from pipeline.core import schema

BEST_OF_N, SAME_EDIT = "best_of_n", "rejected_same_edit"
ORIGINS = (BEST_OF_N, SAME_EDIT)
LIGHT_COLUMNS = ["sample_id", "task", "status", "reason", "source_sha256", "instruction_en", "judge", "scores", "license"]


@dataclass(frozen=True)
class Pair:
    pair_id: str
    task: str
    origin: str
    chosen: str  # sample_id
    rejected: str  # sample_id
    why: str | None
    license: str | None  # the source's, for the licence filter


def pair_id(origin: str, chosen: str, rejected: str) -> str:
    """Stable across exports of the same run: the origin and the two rows, nothing else."""
    return hashlib.sha256(f"{origin}|{chosen}|{rejected}".encode()).hexdigest()[:32]


def _pair(origin: str, chosen: dict[str, Any], rejected: dict[str, Any], why: str | None) -> Pair:
    return Pair(pair_id(origin, chosen["sample_id"], rejected["sample_id"]), chosen["task"], origin,
                chosen["sample_id"], rejected["sample_id"], why, chosen.get("license"))


def pairwise_record(row: dict[str, Any]) -> dict[str, Any]:
    return schema.loads(row.get("judge")).get("pairwise") or {}


def _winner_of(row: dict[str, Any]) -> str | None:
    """The winner a best-of-N loser names; None for every other row."""
    if row.get("status") != schema.REJECTED:
        return None
    winner = pairwise_record(row).get("winner")
    return winner if winner and winner != row["sample_id"] else None


def beaten_by_winner(record: dict[str, Any], winner: str) -> bool:
    """Whether the judge preferred the winner in this loser's comparison with it (a copy that did
    not compete lost to its gates, which is a preference too)."""
    if record.get("competed") is False:
        return True
    return any(c.get("other") == winner and c.get("result") == "loss" for c in record.get("comparisons") or [] if isinstance(c, dict))


def pairwise_why(record: dict[str, Any], winner: str) -> str | None:
    """The judge's reasons from the loser's comparisons with the winner (all its comparisons
    when none was with the winner), in the order they were asked, repeats dropped."""
    comparisons = [c for c in record.get("comparisons") or [] if isinstance(c, dict)]
    against = [c for c in comparisons if c.get("other") == winner] or comparisons
    reasons = list(dict.fromkeys(str(c["why"]).strip() for c in against if c.get("why") and str(c["why"]).strip()))
    return " | ".join(reasons) or None


def _quality(row: dict[str, Any]) -> tuple[float, float, str]:
    """Sort key, best first: O, then gate score, then sample_id (a row without a score ranks last)."""
    scores = schema.loads(row.get("scores"))
    o = (scores.get("viescore") or {}).get("o")
    gate = scores.get("gate_score")
    return (-o if o is not None else math.inf, -gate if gate is not None else math.inf, row["sample_id"])


def _edit_key(row: dict[str, Any]) -> tuple[str, str, str] | None:
    if not row.get("source_sha256") or not (row.get("instruction_en") or "").strip():
        return None
    return (row["task"], row["source_sha256"], row["instruction_en"].strip())


def find_pairs(rows: Iterable[dict[str, Any]], kept: set[str]) -> list[Pair]:
    """Every pair the rules above give, sorted by task then pair_id. `rows`: light candidate rows
    (LIGHT_COLUMNS); `kept`: the sample_ids the run keeps."""
    rows = list(rows)
    by_id = {row["sample_id"]: row for row in rows}
    pairs: list[Pair] = []
    losers: set[str] = set()
    for row in rows:
        winner = _winner_of(row)
        if winner is None:
            continue
        losers.add(row["sample_id"])
        record = pairwise_record(row)
        if winner in kept and winner in by_id and beaten_by_winner(record, winner):
            why = pairwise_why(record, winner) if record.get("competed") is not False else row.get("reason")
            pairs.append(_pair(BEST_OF_N, by_id[winner], row, why))

    best_kept: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        key = _edit_key(row) if row["sample_id"] in kept else None
        if key is not None and (key not in best_kept or _quality(row) < _quality(best_kept[key])):
            best_kept[key] = row
    for row in rows:
        if row.get("status") != schema.REJECTED or row["sample_id"] in losers:
            continue  # a loser whose winner was dropped pairs with nothing
        chosen = best_kept.get(_edit_key(row))  # type: ignore[arg-type]
        if chosen is not None:
            pairs.append(_pair(SAME_EDIT, chosen, row, row.get("reason")))
    return sorted(pairs, key=lambda p: (p.task, p.pair_id))
