"""Fitting gate limits and the judge's minimum O to people's verdicts, one coordinate at a time.

A row is kept when every gate passes and, on a task the judge scored, its O reaches min O. Each
limit is swept alone over the cuts between the values its gate recorded (and today's limit), the
others held; a limit is better when its kept rows reach the target precision of "keep" with more
recall (ties: more precision, then the limit nearest today's), and below the target when it is
more precise.
Each step makes the best single move over all limits; steps repeat until none improves. Every
fitted limit lies halfway between two recorded values (or just past the last), so each is
explained by the rows either side of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from filters.gates import AT_LEAST

MAX_ROUNDS = 5  # turns of (every task's limits, then min O)
HALF_STEP = 5e-5  # half the rounding of recorded gate values (filters/gates.record_gates)
MAX_STEPS_PER_LIMIT = 4  # each step strictly improves, so this only bounds a pathological case


@dataclass(frozen=True)
class GateValue:
    """One recorded gate on one row. `key` is the dotted config key its limit is fitted under;
    None keeps the recorded verdict (a yes/no check, or a limit this row takes from elsewhere)."""

    value: float
    threshold: float
    passed: bool
    direction: str
    key: str | None


@dataclass
class LabelledRow:
    sample_id: str
    task: str
    keep: bool  # people's verdict
    gates: dict[str, GateValue]
    o: float | None = None
    judged: bool = False  # the task is ranked by the judge's O (selection_rules)


@dataclass
class Fit:
    thresholds: dict[str, float]
    min_o: float
    integer_keys: frozenset[str] = field(default_factory=frozenset)


def gate_passes(gate: GateValue, thresholds: dict[str, float]) -> bool:
    if gate.key is None or gate.key not in thresholds:
        return gate.passed
    limit = thresholds[gate.key]
    if limit == gate.threshold:  # today's limit: the recorded verdict (values are stored rounded)
        return gate.passed
    return gate.value >= limit if gate.direction == AT_LEAST else gate.value <= limit


def kept(row: LabelledRow, thresholds: dict[str, float], min_o: float) -> bool:
    if not all(gate_passes(g, thresholds) for g in row.gates.values()):
        return False
    return not row.judged or (row.o is not None and row.o >= min_o)


def _objective(rows: list[LabelledRow], thresholds: dict[str, float], min_o: float, target: float) -> tuple:
    tp = fp = fn = 0
    for row in rows:
        k = kept(row, thresholds, min_o)
        tp += k and row.keep
        fp += k and not row.keep
        fn += (not k) and row.keep
    precision = tp / (tp + fp) if tp + fp else -1.0  # keeping nothing is worse than anything kept
    recall = tp / (tp + fn) if tp + fn else 0.0
    meets = tp + fp > 0 and precision >= target
    return (meets, recall, precision) if meets else (meets, precision, recall)


def _candidates(values: list[float], today: float, direction: str, integer: bool) -> list[float]:
    """Today's limit, and every limit that splits the recorded values differently: halfway between
    two neighbours, and just past each end. Never a recorded value itself: values are recorded
    rounded (to 4 decimals), so a row sitting on such a limit could fall either side of it."""
    ordered = sorted(set(values))
    cuts = [(a + b) / 2 for a, b in zip(ordered, ordered[1:])]
    if ordered:
        cuts += [ordered[0] - HALF_STEP, ordered[-1] + HALF_STEP]
    if integer:  # an integer limit: round each cut the strict way, so it still excludes what it did
        cuts = [math.ceil(c) if direction == AT_LEAST else math.floor(c) for c in cuts]
    else:  # a limit of exactly 0 reads as a yes/no check (filters/gates.margin): nudge it, splitting alike
        cuts = [c or (-HALF_STEP if direction == AT_LEAST else HALF_STEP) for c in cuts]
    return sorted({round(c, 6) for c in cuts} | {today})


def _best(candidates: list[float], today: float, score) -> float:
    return max(candidates, key=lambda c: (*score(c), -abs(c - today)))


def fit_gates(rows: list[LabelledRow], thresholds: dict[str, float], min_o: float, target: float, integer_keys=frozenset()) -> dict[str, float]:
    """The limits `rows` record, from `thresholds` (today's), with min O held. Each step sweeps
    every limit alone and makes the one move that does most (a fixed order would let the first
    limit grab a tiny precise set that no later one can widen); it stops when no move improves.
    Keys name their task (tasks.<task>.gate..., common_gates.per_task.<task>...), so one task's
    rows move only that task's limits."""
    fitted = dict(thresholds)
    observed: dict[str, tuple[str, list[float]]] = {}
    for row in rows:
        for gate in row.gates.values():
            if gate.key in fitted:
                observed.setdefault(gate.key, (gate.direction, []))[1].append(gate.value)
    candidates = {key: _candidates(values, fitted[key], direction, key in integer_keys) for key, (direction, values) in observed.items()}
    current = _objective(rows, fitted, min_o, target)
    for _ in range(MAX_STEPS_PER_LIMIT * len(observed)):
        moves = []
        for key in sorted(observed):
            score = lambda c, key=key: _objective(rows, {**fitted, key: c}, min_o, target)  # noqa: E731
            best = _best(candidates[key], fitted[key], score)
            moves.append((score(best), key, best))
        gain, key, value = max(moves, key=lambda m: m[0])  # the first key wins a tie
        if gain <= current:
            break
        fitted[key], current = value, gain
    return fitted


def fit_min_o(rows: list[LabelledRow], thresholds: dict[str, float], min_o: float, target: float) -> float:
    """One min O for every task (select.min_o is one setting), swept over the O values recorded on
    judged rows, the limits held, its precision and recall over the judged tasks' rows; today's
    when no row was judged."""
    judged = [row for row in rows if row.judged]
    values = [row.o for row in judged if row.o is not None]
    if not values:
        return min_o
    return _best(_candidates(values, min_o, AT_LEAST, False), min_o, lambda c: _objective(judged, thresholds, c, target))


def fit(rows_by_task: dict[str, list[LabelledRow]], today: Fit, target: float) -> Fit:
    """Each task's limits, then the shared min O, in turns until min O stays put."""
    thresholds, min_o = dict(today.thresholds), today.min_o
    everyone = [row for rows in rows_by_task.values() for row in rows]
    for _ in range(MAX_ROUNDS):
        for rows in rows_by_task.values():
            thresholds = fit_gates(rows, thresholds, min_o, target, today.integer_keys)
        new_min_o = fit_min_o(everyone, thresholds, min_o, target)
        if new_min_o == min_o:
            break
        min_o = new_min_o
    return Fit(thresholds, min_o, today.integer_keys)
