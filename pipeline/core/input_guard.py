"""Keep a run's reads inside its input: which local files may be read, and reading them safely.

A folder may hold things that are not photos: a symbolic link out of it (`-> /etc/shadow`), a
FIFO (whose open blocks until a writer comes, so it would hang the run), a device (`/dev/zero`
never ends) or a socket. Planning refuses them by name, before anything is opened
(`refusal`); a worker reads only a regular file no larger than `decode.max_bytes`, checked on
the open descriptor (`read_local`), so a file swapped after planning is still caught. A refused
file is never read, so nothing of it (not even its hash) reaches the run folder.

`input.follow_symlinks`: `false` refuses every symbolic link, `inside` (the default) follows one
only when its target lies inside the input folder, `all` follows any (and lets a manifest name
files anywhere)."""

from __future__ import annotations

import os
import stat

FOLLOW = ("false", "inside", "all")


class UnsafeInput(Exception):
    """A file the run will not read; the message says why."""


def _special(mode: int) -> str | None:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


def inside(path: str, root: str) -> bool:
    """Whether `path`, with every link resolved, lies within `root` (also resolved)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def refusal(path: str, root: str | None, follow: str = "inside") -> str | None:
    """Why the local file `path`, found under `root` (None: named by the user), may not be
    read; None when it may. Never opens the file: a stat cannot hang on a FIFO."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) and root is not None:
            if follow == "false":
                return "a symbolic link (input.follow_symlinks: false)"
            if follow == "inside" and not inside(path, root):
                return "a symbolic link out of the input folder (input.follow_symlinks: inside)"
        info = os.stat(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror or exc}"
    kind = _special(info.st_mode)
    return f"{kind}, not a regular file" if kind else None


def check_size(size: int, max_bytes: int | None) -> None:
    if max_bytes is not None and size > max_bytes:
        raise UnsafeInput(f"{size} bytes, over decode.max_bytes ({max_bytes})")


def check_local(path: str, max_bytes: int | None) -> None:
    """Raise UnsafeInput unless `path` is a regular file within the size limit (for files read
    by another library, such as OpenCV's video reader)."""
    why = refusal(path, None)
    if why:
        raise UnsafeInput(why)
    check_size(os.stat(path).st_size, max_bytes)


def read_local(path: str, max_bytes: int | None) -> bytes:
    """The bytes of a regular local file, refused (UnsafeInput) when it is anything else or
    larger than `max_bytes`. Opened non-blocking, so a FIFO put in its place cannot hang it."""
    why = refusal(path, None)
    if why:
        raise UnsafeInput(why)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)  # the file actually opened, not the name stat'ed above
        kind = _special(info.st_mode)
        if kind:
            raise UnsafeInput(f"{kind}, not a regular file")
        check_size(info.st_size, max_bytes)
        data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    check_size(len(data), max_bytes)  # it grew after the fstat
    return data
