"""Fitting gate limits and the judge's minimum O to people's verdicts, one coordinate at a time.

A row is kept when every gate passes and, on a task the judge scored, its O reaches min O. Each
limit in turn is swept over the values the gate recorded (and today's limit), the others held;
the sweep takes the value whose kept rows reach the target precision of "keep" with the most
recall (ties: more precision, then the value nearest today's). When no value reaches the target it
takes the most precise. Rounds repeat until no limit moves. Every fitted limit is a value some row
recorded, so each can be explained by the rows either side of it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from filters.gates import AT_LEAST

MAX_ROUNDS = 5


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
    if integer:  # an integer limit: round each value the strict way, so it still excludes what it did
        values = [math.ceil(v) if direction == AT_LEAST else math.floor(v) for v in values]
    return sorted(set(values) | {today})


def _best(candidates: list[float], today: float, score) -> float:
    return max(candidates, key=lambda c: (*score(c), -abs(c - today)))


def fit_gates(rows: list[LabelledRow], thresholds: dict[str, float], min_o: float, target: float, integer_keys=frozenset()) -> dict[str, float]:
    """The limits `rows` record, coordinate-wise from `thresholds` (today's), with min O held.
    Keys name their task (tasks.<task>.gate..., common_gates.per_task.<task>...), so one task's
    rows move only that task's limits."""
    fitted = dict(thresholds)
    observed: dict[str, tuple[str, list[float]]] = {}
    for row in rows:
        for gate in row.gates.values():
            if gate.key in fitted:
                observed.setdefault(gate.key, (gate.direction, []))[1].append(gate.value)
    for _ in range(MAX_ROUNDS):
        moved = False
        for key in sorted(observed):
            direction, values = observed[key]
            candidates = _candidates(values, fitted[key], direction, key in integer_keys)
            best = _best(candidates, fitted[key], lambda c, key=key: _objective(rows, {**fitted, key: c}, min_o, target))
            moved |= best != fitted[key]
            fitted[key] = best
        if not moved:
            break
    return fitted


def fit_min_o(rows: list[LabelledRow], thresholds: dict[str, float], min_o: float, target: float) -> float:
    """One min O for every task (select.min_o is one setting), swept over the O values recorded on
    judged rows, the limits held, its precision and recall over the judged tasks' rows; today's
    when no row was judged."""
    judged = [row for row in rows if row.judged]
    values = [row.o for row in judged if row.o is not None]
    if not values:
        return min_o
    return _best(sorted(set(values) | {min_o}), min_o, lambda c: _objective(judged, thresholds, c, target))


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
