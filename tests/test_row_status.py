"""Status transitions: one table in pipeline/core/status.py, and every status change a stage makes
goes through it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from filters.gates import GateResult, record_gates
from pipeline.core import schema, status
from pipeline.core.rows import mark
from pipeline.core.status import StatusError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("new", [schema.OK, schema.REJECTED, schema.ERROR, schema.SKIPPED])
def test_a_pending_row_takes_any_verdict(new):
    assert mark({"status": schema.PENDING}, new, "why")["status"] == new


@pytest.mark.parametrize(
    "old, new",
    [
        (schema.REJECTED, schema.OK),  # gates only add
        (schema.OK, schema.SKIPPED),
        (schema.OK, schema.PENDING),
        (schema.ERROR, schema.OK),
        (schema.ERROR, schema.SKIPPED),
        (schema.SKIPPED, schema.OK),
        (schema.SKIPPED, schema.ERROR),
        (schema.PENDING, "done"),
        ("done", schema.OK),
    ],
)
def test_an_illegal_transition_raises_and_leaves_the_row_alone(old, new):
    row = {"status": old, "reason": "before"}
    with pytest.raises(StatusError, match="unknown row status" if "done" in (old, new) else f"{old!r} row cannot become {new!r}"):
        mark(row, new, "after")
    assert row == {"status": old, "reason": "before"}


def test_a_later_gate_may_reject_an_ok_row_and_never_pass_a_rejected_one():
    row = {"status": schema.PENDING}
    record_gates(row, [GateResult.at_most("outside_change", 1.0, 2.0)])
    assert (row["status"], row["reason"]) == (schema.OK, None)
    record_gates(row, [GateResult.at_least("sharpness", 0.1, 0.5)])
    assert row["status"] == schema.REJECTED and row["reason"].startswith("sharpness")
    record_gates(row, [GateResult.at_most("shift", 0.0, 1.0)])
    assert row["status"] == schema.REJECTED  # the failed gate is still on the row


def test_a_row_without_a_status_counts_as_pending():
    assert status.current({}) == schema.PENDING
    assert mark({}, schema.OK, None)["status"] == schema.OK


def test_a_crash_makes_any_row_an_error():
    for old in status.STATUSES:
        row = status.crashed({"status": old}, "stage: ValueError: boom")
        assert (row["status"], row["reason"]) == (schema.ERROR, "stage: ValueError: boom")


def test_the_table_covers_every_status_and_finals_stay_final():
    assert set(status.ALLOWED) == set(status.STATUSES) == {schema.PENDING, *schema.FINAL_STATUSES}
    assert status.ALLOWED[schema.ERROR] == status.ALLOWED[schema.SKIPPED] == frozenset()
    assert schema.OK not in status.ALLOWED[schema.REJECTED]


def test_no_stage_sets_a_status_by_hand():
    """Only pipeline/core/status.py assigns `row["status"]`; a new row may start with one."""
    assignment = re.compile(r"""\[\s*["']status["']\s*\]\s*(,[^=\n]*)?=(?!=)""")
    offenders = []
    for package in ("pipeline", "stages", "tasks", "filters", "editor"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "pipeline" / "core" / "status.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if assignment.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
