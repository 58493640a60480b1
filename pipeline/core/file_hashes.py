"""sha256 of files, streamed (checkpoints are many GB), with a cache keyed by each file's real
path, size and modification time, so that checking the model lock on every run re-reads only
files that changed since they were last hashed. A rewrite that keeps a file's size and its
mtime to the nanosecond would be missed; `models verify --rehash` ignores the cache."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

CHUNK = 8 * 1024 * 1024


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def default_cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "editing-pipeline" / "sha256-cache.json"


class HashCache:
    """{real path: [size, mtime_ns, sha256]} in one JSON file; `save` writes it atomically."""

    def __init__(self, path: Path | None = None, use: bool = True):
        self.path = path or default_cache_path()
        self.use = use
        self.entries: dict[str, list] = {}
        self.hashed_bytes = 0  # what this instance actually read, for the log
        if use:
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def digest(self, path: Path) -> tuple[int, str]:
        """(size, sha256) of the file `path` points at, from the cache when size and mtime match."""
        real = os.path.realpath(path)  # the hub cache's snapshot files are links to blobs
        stat = os.stat(real)
        known = self.entries.get(real)
        if self.use and known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            return stat.st_size, known[2]
        sha = sha256_file(Path(real))
        self.hashed_bytes += stat.st_size
        self.entries[real] = [stat.st_size, stat.st_mtime_ns, sha]
        return stat.st_size, sha

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".sha256-cache.")
            with os.fdopen(fd, "w") as f:
                json.dump(self.entries, f)
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file under `folder` by its relative POSIX path; names starting with a dot (the
    hub's .cache/ metadata, a tiny build's .complete mark, .gitattributes) are not part of a model."""
    files = {}
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                path = Path(root) / name
                files[path.relative_to(folder).as_posix()] = path
    return files
