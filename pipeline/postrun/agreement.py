"""Agreement of a keep/reject filter with people's verdicts: n, accuracy, Cohen's kappa, and the
precision and recall of "keep". Written out (four counts, four formulas) so the report's numbers
can be checked by hand."""

from __future__ import annotations

from typing import Iterable


def confusion(pairs: Iterable[tuple[bool, bool]]) -> tuple[int, int, int, int]:
    """(true keeps, false keeps, false rejects, true rejects) over (people keep, filter keeps) pairs."""
    tp = fp = fn = tn = 0
    for person, kept in pairs:
        if kept:
            tp, fp = tp + person, fp + (not person)
        else:
            fn, tn = fn + person, tn + (not person)
    return tp, fp, fn, tn


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den else None


def cohen_kappa(tp: int, fp: int, fn: int, tn: int) -> float | None:
    """(observed - chance agreement) / (1 - chance), chance from the two sides' keep rates; None
    when chance agreement is 1 (both sides said the same thing of every row)."""
    n = tp + fp + fn + tn
    if not n:
        return None
    observed = (tp + tn) / n
    chance = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / (n * n)
    return None if chance >= 1 else round((observed - chance) / (1 - chance), 4)


def agreement(pairs: Iterable[tuple[bool, bool]]) -> dict[str, float | int | None]:
    """n, accuracy, kappa, precision and recall of keep; a ratio with nothing to divide is None."""
    tp, fp, fn, tn = confusion(pairs)
    n = tp + fp + fn + tn
    return {
        "n": n,
        "accuracy": _ratio(tp + tn, n),
        "kappa": cohen_kappa(tp, fp, fn, tn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "kept": tp + fp,
    }
