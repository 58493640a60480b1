"""Best of N by a pairwise judge: the prompt, reading the answer, and ranking one group.

The judge sees the source, then two targets (A and B), then the instruction, and answers JSON:
`{"better": "A" | "B", "why": "..."}`. Every pair is asked in both orders, so a judge that
prefers whatever is shown first (position bias) cancels out: the two answers must name the same
picture for a win, and a pair whose answers disagree is a tie. A refusal, a malformed answer or a
request that fails (a timeout, a server error after the client's retries) makes the pair a tie
with that reason: never a winner the judge did not name. No retry: a second prompt to a judge
that is biased or broken would only spend calls.

Ranking: a win counts 1, a tie 0.5; most wins first, ties broken by the lowest seed index, so an
all-tie group is won by seed 0 and its rows say it was a tie. The records written here are the
`judge.pairwise` contract that preference exports read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from filters.judge.backends import JudgeBackend, JudgeCall, snippet
from stages.models.mllm_json import parse_reply
from stages.models.openai_client import REFUSED, TIMEOUT, ChatResult, is_refusal

WIN, LOSS, TIE = "win", "loss", "tie"
LOST = "lost_pairwise"  # the reason a target that lost to another seed of its edit is rejected
DISAGREE, MALFORMED = "disagree", "malformed"
FIRST, SECOND = "A", "B"

PAIRWISE_TEMPLATE = (
    "You are comparing two attempts by an image editor to carry out one instruction. The first "
    "image is the original picture. The second image is edit A, the third image is edit B; both "
    "started from the original and tried to carry out the instruction quoted below.\n"
    "Which edit is better? The better edit carries out the instruction more completely, leaves "
    "more of the original picture as it was apart from what the instruction asks for, and looks "
    "more natural and free of defects (smears, distortions, seams).\n"
    'Instruction: """{instruction}"""\n'
    "You must choose one. Reply with one JSON object and nothing else, in this form:\n"
    '{{"better": "A" or "B", "why": "<one sentence>"}}'
)
PROMPT_HASH = hashlib.sha256(PAIRWISE_TEMPLATE.encode()).hexdigest()[:12]
_SCHEMA = {"better": str, "why": str}


def pairwise_prompt(instruction: str) -> str:
    return PAIRWISE_TEMPLATE.format(instruction=instruction)


@dataclass(frozen=True)
class Preference:
    """One answer: which shown picture the judge named, or why there is none."""

    better: str | None  # FIRST, SECOND, or None
    why: str
    tie_reason: str | None = None  # REFUSED, MALFORMED, TIMEOUT when `better` is None


def read_preference(result: ChatResult) -> Preference:
    """A reply as a preference. Failed requests: a refusal is `refused`, an empty reply
    `malformed`, a timeout or a server that kept failing `timeout` (no answer came)."""
    if not result.ok:
        kind = REFUSED if result.failure == REFUSED else MALFORMED if result.failure == "empty" else TIMEOUT
        return Preference(None, f"no answer: {result.reason}", kind)
    if is_refusal(result.text or ""):
        return Preference(None, f"refusal: {snippet(result.text or '', 120)}", REFUSED)
    parsed = parse_reply(result.text, _SCHEMA)
    if not parsed.ok:
        return Preference(None, f"unreadable answer ({parsed.reason}): {snippet(result.text or '', 120)}", MALFORMED)
    better = str(parsed.value["better"]).strip().strip(".").upper()
    if better not in (FIRST, SECOND):
        return Preference(None, f"'better' is {parsed.value['better']!r}, not A or B", MALFORMED)
    return Preference(better, snippet(str(parsed.value["why"]), 300))


@dataclass(frozen=True)
class PairOutcome:
    """One pair (i, j) asked in both orders: i shown as A first, then j as A."""

    winner: int | None  # i or j, or None for a tie
    why: str
    tie_reason: str | None


def settle_pair(i: int, j: int, i_first: Preference, j_first: Preference) -> PairOutcome:
    """A winner only when both orders name the same picture; otherwise a tie with its reason."""
    for answer in (i_first, j_first):
        if answer.better is None:
            return PairOutcome(None, answer.why, answer.tie_reason)
    picked_in_first = i if i_first.better == FIRST else j
    picked_in_second = j if j_first.better == FIRST else i
    if picked_in_first != picked_in_second:
        return PairOutcome(None, f"the orders disagree (A first: {i_first.why} / B first: {j_first.why})", DISAGREE)
    return PairOutcome(picked_in_first, i_first.why, None)


def pair_calls(source: np.ndarray, targets: Sequence[np.ndarray], instruction: str) -> list[tuple[int, int, JudgeCall]]:
    """Every pair of targets in both orders, in a fixed order: (i, j) with i < j shows i as A,
    then (j, i) shows j as A. N targets make N x (N - 1) calls."""
    prompt = pairwise_prompt(instruction)
    calls = []
    for i in range(len(targets)):
        for j in range(i + 1, len(targets)):
            calls.append((i, j, JudgeCall((source, targets[i], targets[j]), prompt)))
            calls.append((j, i, JudgeCall((source, targets[j], targets[i]), prompt)))
    return calls


def calls_per_group(n: int) -> int:
    return n * (n - 1)


def rank_group(ids: Sequence[str], outcomes: dict[tuple[int, int], PairOutcome]) -> list[dict[str, Any]]:
    """Per competitor (in seed order): wins, rank and its comparisons. `outcomes[(i, j)]` for
    every i < j."""
    wins = [0.0] * len(ids)
    comparisons: list[list[dict[str, Any]]] = [[] for _ in ids]
    for (i, j), outcome in sorted(outcomes.items()):
        for me, other in ((i, j), (j, i)):
            if outcome.winner is None:
                result = TIE
                wins[me] += 0.5
            else:
                result = WIN if outcome.winner == me else LOSS
                wins[me] += 1.0 if result == WIN else 0.0
            comparisons[me].append({"other": ids[other], "result": result, "why": outcome.why, "tie_reason": outcome.tie_reason})
    order = sorted(range(len(ids)), key=lambda k: (-wins[k], k))  # ties: the lowest seed index first
    rank = {k: position + 1 for position, k in enumerate(order)}
    top = wins[order[0]]
    tied_at_top = sum(1 for w in wins if w == top) > 1
    winner = ids[order[0]]
    return [
        {"wins": wins[k], "rank": rank[k], "comparisons": comparisons[k], "winner": winner, "tie_at_top": tied_at_top}
        for k in range(len(ids))
    ]


def judge_group(backend: JudgeBackend, source: np.ndarray, targets: Sequence[np.ndarray], instruction: str, ids: Sequence[str], one_at_a_time: bool) -> list[dict[str, Any]]:
    """Ask every pair in both orders and rank the group. `one_at_a_time` for a model in this
    process: batched generation pads prompts, and a group's answers must not depend on how its
    calls were batched."""
    planned = pair_calls(source, targets, instruction)
    calls = [call for _, _, call in planned]
    results = [r for call in calls for r in backend.ask([call])] if one_at_a_time else list(backend.ask(calls))
    if len(results) != len(calls):
        raise RuntimeError(f"pairwise judge backend gave {len(results)} replies for {len(calls)} prompts")
    answers = {(a, b): read_preference(result) for (a, b, _), result in zip(planned, results)}
    outcomes = {(i, j): settle_pair(i, j, answers[(i, j)], answers[(j, i)]) for i in range(len(ids)) for j in range(i + 1, len(ids))}
    return rank_group(ids, outcomes)
