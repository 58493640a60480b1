"""What every gate shares: a result type, and recording results and the verdict on a row."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core import schema
from pipeline.core import status as row_status
from pipeline.core.stage import Row

AT_MOST, AT_LEAST = "at_most", "at_least"


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float
    threshold: float
    passed: bool
    direction: str = AT_MOST

    @classmethod
    def at_most(cls, name: str, value: float, threshold: float) -> "GateResult":
        return cls(name, float(value), float(threshold), bool(value <= threshold), AT_MOST)

    @classmethod
    def at_least(cls, name: str, value: float, threshold: float) -> "GateResult":
        return cls(name, float(value), float(threshold), bool(value >= threshold), AT_LEAST)


def margin(gate: dict) -> float | None:
    """How far a recorded gate's value is on the passing side of its threshold, relative to the
    threshold (negative when it failed). A zero threshold is a yes/no check (sizes match, no
    fallback mask): it has no scale, so it gives no margin; a failed one rejects the row anyway.
    Gates without a direction count as just passing."""
    direction = gate.get("direction")
    if direction not in (AT_MOST, AT_LEAST):
        return 0.0 if gate["passed"] else -1.0
    if float(gate["threshold"]) == 0.0:
        return None if gate["passed"] else -1.0
    scale = abs(float(gate["threshold"]))
    gap = float(gate["threshold"]) - float(gate["value"])
    return gap / scale if direction == AT_MOST else -gap / scale


def gate_score(gates: dict) -> float:
    """The smallest margin over the recorded gates: how comfortably the row passed them all."""
    margins = [m for m in (margin(g) for g in gates.values()) if m is not None]
    return round(min(margins), 4) if margins else 0.0


def record_gates(row: Row, results: list[GateResult]) -> Row:
    """Add each gate's value and verdict to `scores`. The verdict covers every gate recorded on
    the row so far, so a later gate can reject a row but never pass one an earlier gate failed.
    `gate_score` is the smallest margin over them: how comfortably the row passed."""
    scores = schema.loads(row.get("scores"))
    gates = scores.setdefault("gates", {})
    for result in results:
        gates[result.name] = {
            "value": round(result.value, 4),
            "threshold": result.threshold,
            "passed": result.passed,
            "direction": result.direction,
        }
    scores["gate_score"] = gate_score(gates)
    row["scores"] = schema.dumps(scores)
    failed = [(name, g) for name, g in gates.items() if not g["passed"]]
    reason = "; ".join(f"{name} {g['value']:.3g} (limit {g['threshold']:g})" for name, g in failed)
    return row_status.gate_verdict(row, reason or None)
