"""What every gate shares: a result type, and recording results and the verdict on a row."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import schema
from stages.base import Row


@dataclass(frozen=True)
class GateResult:
    name: str
    value: float
    threshold: float
    passed: bool

    @classmethod
    def at_most(cls, name: str, value: float, threshold: float) -> "GateResult":
        return cls(name, float(value), float(threshold), bool(value <= threshold))

    @classmethod
    def at_least(cls, name: str, value: float, threshold: float) -> "GateResult":
        return cls(name, float(value), float(threshold), bool(value >= threshold))


def record_gates(row: Row, results: list[GateResult]) -> Row:
    """Store each gate's value and verdict in `scores`; the row is ok only if all passed."""
    scores = schema.loads(row.get("scores"))
    gates = scores.setdefault("gates", {})
    for result in results:
        gates[result.name] = {"value": round(result.value, 4), "threshold": result.threshold, "passed": result.passed}
    row["scores"] = schema.dumps(scores)
    failed = [r for r in results if not r.passed]
    if failed:
        row["status"] = schema.REJECTED
        row["reason"] = "; ".join(f"{r.name} {r.value:.3g} (limit {r.threshold:g})" for r in failed)
    else:
        row["status"] = schema.OK
        row["reason"] = None
    return row
