"""The judge's rules: which rows are judged, the retry (one stricter prompt for a readable but
wrong answer, none for a failure), what counts as a score and what is `unscored` (a refusal,
an empty reply, a timeout, a server that keeps failing, two unreadable answers), how SC, PQ and
O are combined, and what the row records in `judge` and `scores.viescore`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from filters.judge.backends import JudgeBackend, JudgeCall, snippet
from filters.judge.pairwise import LOST
from filters.judge.rubric import VIESCORE, Rubric
from filters.viescore import PQ, SC, ScoreReply, match_source_size
from pipeline.core import schema
from pipeline.core.image_io import decode_image
from pipeline.core.stage import Row
from stages.models.openai_client import REFUSED, ChatResult

SCORED, UNSCORED, NONE = "scored", "unscored", "none"
NO_JUDGE = "no judge on this profile: ranking uses the gate score"
REJECTED_BY_GATES = "rejected by gates"
LOST_TO_ANOTHER_SEED = "lost the pairwise comparison to another seed of its edit"
_CHUNK_ROWS = 32  # rows decoded and judged together by judge_rows


@dataclass
class CallOutcome:
    reply: ScoreReply | None  # None when no usable answer came
    reason: str | None  # why there is no usable answer
    attempts: int  # prompts sent: 1, or 2 after a stricter retry
    requests: int  # HTTP requests behind them (busy servers are retried by the client)
    rejected: list[str]  # why earlier replies could not be read
    last_reply: str | None
    retry: bool = False  # a readable-but-wrong answer: worth one stricter prompt

    def record(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "requests": self.requests,
            "reason": self.reason,
            "rejected_replies": self.rejected,
            "last_reply": self.last_reply,
        }


class Judge:
    def __init__(self, backend: JudgeBackend, rubric: Rubric = VIESCORE):
        self.backend, self.rubric = backend, rubric

    def setup(self) -> None:
        self.backend.setup()

    def settings(self) -> dict[str, Any]:
        """What every judgement records beside its scores."""
        return {**self.backend.describe(), **self.rubric.describe()}

    def judge_triplets(self, triplets: Sequence[tuple[np.ndarray, np.ndarray, str]]) -> list[dict[str, Any]]:
        """One judgement record per (source, edited, instruction)."""
        calls: list[JudgeCall] = []
        for source, edited, instruction in triplets:
            edited = match_source_size(edited, source)
            calls.append(JudgeCall((source, edited), self.rubric.sc_prompt(instruction)))
            calls.append(JudgeCall((edited,), self.rubric.pq_prompt()))
        outcomes = self._ask_with_retry(calls)
        settings = self.settings()
        return [verdict(outcomes[2 * i], outcomes[2 * i + 1], settings, self.rubric) for i in range(len(triplets))]

    def _ask_with_retry(self, calls: list[JudgeCall]) -> list[CallOutcome]:
        first = self._ask(calls)
        outcomes = [read_result(result, 1, [], self.rubric) for result in first]
        # only readable-but-wrong answers earn a second, stricter prompt; failures are final
        again = [i for i, outcome in enumerate(outcomes) if outcome.retry]
        if again:
            retried = self._ask([JudgeCall(calls[i].images, self.rubric.strict_prompt(calls[i].prompt, outcomes[i].reason)) for i in again])
            for i, result in zip(again, retried):
                earlier = outcomes[i]
                outcome = read_result(result, 2, earlier.rejected + [earlier.reason], self.rubric)
                outcome.requests += earlier.requests
                outcomes[i] = outcome
        return outcomes

    def _ask(self, calls: list[JudgeCall]) -> list[ChatResult]:
        results = list(self.backend.ask(calls)) if calls else []
        if len(results) != len(calls):
            raise RuntimeError(f"judge backend gave {len(results)} replies for {len(calls)} prompts")
        return results


def read_result(result: ChatResult, attempts: int, rejected: list[str], rubric: Rubric = VIESCORE) -> CallOutcome:
    text = snippet(result.text) if result.text is not None else None
    if not result.ok:
        return CallOutcome(None, f"{result.failure}: {result.reason}", attempts, result.attempts, rejected, text)
    reply = rubric.parse(result.text)
    if reply.refused:
        return CallOutcome(None, f"{REFUSED}: {reply.reason}", attempts, result.attempts, rejected, text)
    if not reply.ok:
        return CallOutcome(None, f"unreadable: {reply.reason}", attempts, result.attempts, rejected, text, retry=True)
    return CallOutcome(reply, None, attempts, result.attempts, rejected, text)


def verdict(sc: CallOutcome, pq: CallOutcome, settings: dict[str, Any], rubric: Rubric = VIESCORE) -> dict[str, Any]:
    """The row's `judge` record. Scores appear only when both calls gave readable answers;
    `sc_scores`/`pq_scores` keep the sub-scores on the rubric's own scale."""
    record: dict[str, Any] = {
        **settings,
        "state": UNSCORED,
        "reason": None,
        "sc": None,
        "pq": None,
        "o": None,
        "sc_scores": None,
        "pq_scores": None,
        "sc_reasoning": None,
        "pq_reasoning": None,
        "calls": {SC: sc.record(), PQ: pq.record()},
        "attempts": {SC: sc.attempts, PQ: pq.attempts},
    }
    if sc.reply is not None and pq.reply is not None:
        record.update(rubric.combine(sc.reply.scores, pq.reply.scores), state=SCORED, ranked_by="o")
        record.update(sc_scores=list(sc.reply.scores), pq_scores=list(pq.reply.scores))
        record.update(sc_reasoning=sc.reply.reasoning, pq_reasoning=pq.reply.reasoning)
    else:
        record["reason"] = "; ".join(f"{name}: {o.reason}" for name, o in ((SC, sc), (PQ, pq)) if o.reply is None)
    return record


def unscored(reason: str, settings: dict[str, Any]) -> dict[str, Any]:
    empty = CallOutcome(None, reason, 0, 0, [], None)
    record = verdict(empty, empty, settings)
    record["reason"] = reason
    return record


# -- rows -----------------------------------------------------------------------------------------


def write_judgement(row: Row, record: dict[str, Any]) -> Row:
    """`judge` gets the record; `scores.viescore` gets SC, PQ and O when scored, and any stale
    value is removed otherwise. A best-of-N ranking already on the row (`pairwise`) is kept."""
    pairwise = schema.loads(row.get("judge")).get("pairwise")
    row["judge"] = schema.dumps(record if pairwise is None else {**record, "pairwise": pairwise})
    scores = schema.loads(row.get("scores"))
    if record["state"] == SCORED:
        scores["viescore"] = {"sc": record["sc"], "pq": record["pq"], "o": record["o"]}
    else:
        scores.pop("viescore", None)
    row["scores"] = schema.dumps(scores)
    return row


def judge_rows(rows: list[Row], judge: Judge | None) -> list[Row]:
    """Judges the `ok` rows in place and returns them all. `rejected` rows get state `none`;
    rows with no candidate (error, skipped, pending) are left as they are. With no judge every
    candidate says that ranking uses the gate score."""
    if judge is None:
        for row in rows:
            if row.get("status") in schema.CANDIDATE_STATUSES:
                reason = _why_rejected(row) if row["status"] == schema.REJECTED else NO_JUDGE
                write_judgement(row, {"state": NONE, "reason": reason, "ranked_by": "gate_score"})
        return rows
    for row in rows:
        if row.get("status") == schema.REJECTED:
            write_judgement(row, {"state": NONE, "reason": _why_rejected(row)})
    todo = [row for row in rows if row.get("status") == schema.OK]
    if todo:
        judge.setup()  # idempotent; the recorded settings then name what actually loaded
    for start in range(0, len(todo), _CHUNK_ROWS):
        _judge_chunk(todo[start : start + _CHUNK_ROWS], judge)
    return rows


def _why_rejected(row: Row) -> str:
    return LOST_TO_ANOTHER_SEED if row.get("reason") == LOST else REJECTED_BY_GATES


def _judge_chunk(rows: list[Row], judge: Judge) -> None:
    ready: list[tuple[Row, tuple[np.ndarray, np.ndarray, str]]] = []
    settings = judge.settings()
    for row in rows:
        triplet, problem = _triplet(row)
        if problem:
            write_judgement(row, unscored(problem, settings))
        else:
            ready.append((row, triplet))
    records = judge.judge_triplets([triplet for _, triplet in ready])
    for (row, _), record in zip(ready, records, strict=True):
        write_judgement(row, record)


def _triplet(row: Row) -> tuple[tuple[np.ndarray, np.ndarray, str] | None, str | None]:
    instruction = (row.get("instruction_en") or "").strip()
    if not instruction:
        return None, "no English instruction to judge against"
    try:
        source = decode_image(row["source_image"]["bytes"])
        edited = decode_image(row["target_image"]["bytes"])
    except Exception as exc:  # an unreadable image is missing data for the judge, not a score
        return None, f"unreadable image: {type(exc).__name__}"
    return (source, edited, instruction), None
