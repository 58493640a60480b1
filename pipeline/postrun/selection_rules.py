"""Which candidates selection keeps: the scores it ranks on (VIEScore O where a judge ran on the
task, else the gate score; the two scales never mix in one ranking), why a row does not qualify,
the dedup of what qualifies, the keep ratio per task, and the funnel the manifest reports."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from filters.gates import gate_score as smallest_margin
from pipeline.core import schema
from pipeline.postrun.dedup import (
    Candidate,
    dedup,
    near_duplicate_clusters,
    normalise_instruction,
)

O_KIND, GATE_KIND = "o", "gate_score"
JUDGED_STATES = ("scored", "unscored")  # a judge ran on the row


def keep_count(ratio: float, candidates: int, qualified: int) -> int:
    """floor(ratio x candidates), but at least one row when any qualified, never more than did."""
    if qualified == 0:
        return 0
    return min(qualified, max(1, math.floor(ratio * candidates + 1e-9)))


def o_score(scores: dict[str, Any]) -> float | None:
    """VIEScore O, where the judge (filters/judge/policy.py) wrote it: scores.viescore.o."""
    value = (scores.get("viescore") or {}).get("o")
    return None if value is None else float(value)


def gate_score(scores: dict[str, Any]) -> float | None:
    """The recorded gate score; rows written before it was recorded get it from their gates."""
    if scores.get("gate_score") is not None:
        return float(scores["gate_score"])
    gates = scores.get("gates") or {}
    return smallest_margin(gates) if gates else None


def judge_state(judge: dict[str, Any]) -> str:
    return judge.get("state") or "none"


# --- deciding --------------------------------------------------------------------------------


def _task_kinds(rows: list[dict[str, Any]]) -> dict[str, str]:
    """A task is ranked by O when a judge ran on any of its rows, else by gate score: the two
    scales never mix in one ranking."""
    kinds: dict[str, str] = {}
    for row in rows:
        judged = row["_judge_state"] in JUDGED_STATES
        kinds[row["task"]] = O_KIND if judged or kinds.get(row["task"]) == O_KIND else GATE_KIND
    return kinds


def _qualify(row: dict[str, Any], kind: str, settings: dict[str, Any]) -> str | None:
    """None when the row may be selected, else why not."""
    if row["status"] != schema.OK:
        return f"status {row['status']}"
    if kind == O_KIND:
        if row["_judge_state"] == "unscored":
            return "the judge could not score it"
        if row["_o"] is None:
            return "no judge score"
        if row["_o"] < float(settings["min_o"]):
            return f"below min O ({row['_o']:g} < {float(settings['min_o']):g})"
        return None
    if row["_gate_score"] is None:
        return "no gate score"
    if row["_gate_score"] < float(settings["min_gate_score"]):
        return f"below min gate score ({row['_gate_score']:g} < {float(settings['min_gate_score']):g})"
    return None


def decide(rows: list[dict[str, Any]], hashes: dict[str, dict[str, str]], settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One selection record per candidate row, in (task, sample_id) order."""
    for row in rows:
        scores, judge = schema.loads(row["scores"]), schema.loads(row["judge"])
        row["_o"], row["_gate_score"], row["_judge_state"] = o_score(scores), gate_score(scores), judge_state(judge)
    kinds = _task_kinds(rows)
    clusters = near_duplicate_clusters({h["source"]: h["phash"] for h in hashes.values()}, int(settings["phash_distance"]))

    records: dict[str, dict[str, Any]] = {}
    eligible: list[Candidate] = []
    for row in sorted(rows, key=lambda r: (r["task"], r["sample_id"])):
        kind = kinds[row["task"]]
        score = row["_o"] if kind == O_KIND else row["_gate_score"]
        source = hashes[row["sample_id"]]
        records[row["sample_id"]] = {
            "sample_id": row["sample_id"], "task": row["task"], "status": row["status"], "selected": False, "rank": None,
            "score": score, "score_kind": kind, "o": row["_o"], "gate_score": row["_gate_score"],
            "judge_state": row["_judge_state"], "license": row["license"], "source_sha256": row["source_sha256"],
            "source_phash": source["phash"], "dedup_group": None, "dedup_winner": None, "reason": _qualify(row, kind, settings),
        }
        if records[row["sample_id"]]["reason"] is None:
            cluster = clusters[source["source"]]
            eligible.append(Candidate(row["sample_id"], row["task"], source["source"], cluster, normalise_instruction(row["instruction_en"]), float(score)))

    verdicts = dedup(eligible, bool(settings["dedup_sources"]), bool(settings["dedup_instructions"]), settings["instruction_scope"])
    for sid, verdict in verdicts.items():
        records[sid].update(dedup_group=verdict.group, dedup_winner=verdict.winner, reason=verdict.reason)

    candidates_per_task: dict[str, int] = defaultdict(int)
    for rec in records.values():
        candidates_per_task[rec["task"]] += 1
    ranked: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for cand in eligible:
        if records[cand.sample_id]["reason"] is None:
            ranked[cand.task].append(records[cand.sample_id])
    for task, members in ranked.items():
        members.sort(key=lambda r: (-r["score"], r["sample_id"]))
        keep = keep_count(float(settings["keep_ratio"]), candidates_per_task[task], len(members))
        for rank, rec in enumerate(members, start=1):
            rec["rank"] = rank
            rec["selected"] = rank <= keep
            if not rec["selected"]:
                rec["reason"] = f"outside the keep ratio (rank {rank}, keeping {keep})"
    return list(records.values())


def funnel(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per task: generated candidates, how many passed each gate, passed them all, were scored by
    the judge, qualified for ranking, survived dedup, and were kept."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = out.setdefault(row["task"], {"generated": 0, "passed_gates": defaultdict(int), "passed_all_gates": 0, "judged": 0})
        entry["generated"] += 1
        entry["passed_all_gates"] += row["status"] == schema.OK
        entry["judged"] += row["_judge_state"] == "scored"
        for name, gate in (schema.loads(row["scores"]).get("gates") or {}).items():
            entry["passed_gates"][name] += bool(gate.get("passed"))
    for rec in records:
        entry = out[rec["task"]]
        entry["score_kind"] = rec["score_kind"]
        entry["ranked"] = entry.get("ranked", 0) + (rec["rank"] is not None)
        entry["kept"] = entry.get("kept", 0) + rec["selected"]
    return {task: {**e, "passed_gates": dict(sorted(e["passed_gates"].items()))} for task, e in sorted(out.items())}
