"""Turn a failed write (disk full, permission denied, a run folder that vanished) into one line
naming the path and the cause. On a Ray cluster the OSError arrives wrapped (a task error inside
a Ray Data error), so the chain of causes is searched for it."""

from __future__ import annotations

import os


def _first_cause(exc: BaseException | None, matches) -> BaseException | None:
    """The first of `exc` and its causes that `matches` (`cause` is Ray's wrapper's, `__cause__`
    and `__context__` Python's)."""
    todo, seen = [exc], set()
    while todo:
        exc = todo.pop(0)
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if matches(exc):
            return exc
        todo += [getattr(exc, "cause", None), exc.__cause__, exc.__context__]
    return None


def os_error_of(exc: BaseException | None) -> OSError | None:
    """The first OSError with an errno among `exc` and its causes (Ray's wrapper classes may
    subclass OSError without an errno)."""
    return _first_cause(exc, lambda e: isinstance(e, OSError) and e.errno is not None)


def error_of(exc: BaseException | None, kind: type[BaseException]) -> BaseException | None:
    """The first `kind` among `exc` and its causes (a stage's own error arrives wrapped by Ray)."""
    return _first_cause(exc, lambda e: isinstance(e, kind))


def describe(error: OSError) -> str:
    """`PATH: cause (ENAME)`, as one line."""
    name = os.strerror(error.errno) if error.errno else ""
    cause = error.strerror or name or str(error)
    code = f" (errno {error.errno})" if error.errno else ""
    return f"{error.filename or '?'}: {cause}{code}"
