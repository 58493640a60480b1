"""A row's status and the one place it changes.

Every row starts `pending`. A stage gives it a verdict: `ok` or `rejected` (gates), `skipped`
(nothing to edit in this input) or `error`. Gates only add: a later gate may reject an `ok` row,
never pass a `rejected` one. `error` and `skipped` are final. The shard writer may still turn a
candidate that lacks an image into an `error`, and a stage that crashes on a row (the runner's
per-row isolation) makes it an `error` whatever it was: that is `crashed`, the one way past the
table below."""

from __future__ import annotations

from pipeline.core.schema import ERROR, OK, PENDING, REJECTED, SKIPPED
from pipeline.core.stage import Row

STATUSES = (PENDING, OK, REJECTED, ERROR, SKIPPED)

# status now -> the statuses a stage may give the row next
ALLOWED: dict[str, frozenset[str]] = {
    PENDING: frozenset({OK, REJECTED, ERROR, SKIPPED}),
    # a later gate passes it again or rejects it; the writer errors a candidate missing an image
    OK: frozenset({OK, REJECTED, ERROR}),
    REJECTED: frozenset({REJECTED, ERROR}),
    ERROR: frozenset(),
    SKIPPED: frozenset(),
}


class StatusError(ValueError):
    """A stage tried a status change the table does not allow."""


def current(row: Row) -> str:
    """The row's status; a row built by hand without one (tests, tools) counts as pending."""
    status = row.get("status")
    return PENDING if status is None else status


def allowed(old: str, new: str) -> bool:
    return new in ALLOWED.get(old, frozenset())


def check(old: str, new: str) -> None:
    if old not in ALLOWED:
        raise StatusError(f"unknown row status {old!r}; known: {', '.join(STATUSES)}")
    if new not in ALLOWED:
        raise StatusError(f"unknown row status {new!r}; known: {', '.join(STATUSES)}")
    if not allowed(old, new):
        can = ", ".join(sorted(ALLOWED[old])) or "nothing: it is final"
        raise StatusError(f"a {old!r} row cannot become {new!r} (it may become: {can})")


def move(row: Row, new: str, reason: str | None) -> Row:
    """Set the row's status and reason, refusing a change the table does not allow."""
    check(current(row), new)
    row["status"] = new
    row["reason"] = reason
    return row


def gate_verdict(row: Row, failed_reason: str | None) -> Row:
    """A gate's verdict over every gate recorded on the row: `rejected` with the failures, else `ok`."""
    if failed_reason:
        return move(row, REJECTED, failed_reason)
    return move(row, OK, None)


def crashed(row: Row, reason: str) -> Row:
    """A stage raised on this row: it becomes an error whatever it was (stages that take final
    rows, the split and the writer, can crash on them too)."""
    row["status"] = ERROR
    row["reason"] = reason
    return row
