"""Where a run folder lives: a local folder, or a prefix on any fsspec filesystem by URI
(s3://bucket/run/, gs://...), opened with the run's `io.*` settings (credentials only from the
store's own chain, as for inputs: `filesystems.py`).

Everything the pipeline reads from or writes into a run goes through `RunStore`, by names
relative to the run's root ("candidates/shard-00001.parquet"). A file is given out as a `Path` on
a local folder (so local runs behave exactly as they always did) and as a `StoredFile` on a store;
both answer the few Path methods the readers use: `name`, `open`, `exists`, `read_bytes`,
`read_text`, `unlink`.

How a write becomes visible differs: a local folder has atomic rename (`atomic_write`: a
temporary name, fsync, rename); an object store has none, but an object PUT is all or nothing, so
a file is written once under its final name. The shard writer gives a store's shard files a name
unique per attempt, and the completion record written last says which files count."""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import hashlib
import io as io_mod
import os
import shutil
from pathlib import Path
from typing import IO, Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.filesystems import (
    InputError,
    failure_message,
    filesystem,
    is_remote,
    is_store_error,
    redact,
)


def atomic_write(path: Any, data: bytes) -> None:
    """Write under a temporary name, flush to disk, then rename: readers see all or nothing. On
    failure (disk full, permission denied) the temporary file is removed, so nothing half-written
    is left to look like work, and the OSError names `path`, not the temporary name. A
    `StoredFile` is written by one PUT, all or nothing by itself."""
    if isinstance(path, StoredFile):
        path.write_bytes(data)
        return
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def _as_os_error(exc: BaseException, uri: str) -> OSError:
    """A store's own error as an OSError naming the file (the runner turns OSErrors into one
    line); an OSError that already has an errno keeps it."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return OSError(exc.errno, exc.strerror or str(exc), redact(uri))
    return OSError(errno.EIO, failure_message(uri, exc), redact(uri))


class RunStore:
    """A run's root: `root` is what the user gave (a Path for a local folder, the URI otherwise).
    Pickles as (root, io), so Ray workers open the same store; the filesystem itself is made on
    first use, from the environment as it is then (not fsspec's cached instance)."""

    def __init__(self, root: str | Path, io: dict[str, Any] | None = None):
        self.remote = is_remote(str(root))
        self.root: str | Path = str(root).rstrip("/") if self.remote else Path(root)
        self.io = io
        self._fs = None

    def __reduce__(self):
        return (RunStore, (self.root, self.io))

    def _connect(self) -> None:
        if self._fs is None:
            self._fs, self._base = filesystem(str(self.root), self.io, fresh=True)

    @property
    def fs(self):
        self._connect()
        return self._fs

    def _path(self, rel: str) -> str:
        """The path on the filesystem of a name relative to the root."""
        self._connect()
        return f"{self._base}/{rel}" if rel else self._base

    def uri(self, rel: str = "") -> str:
        return f"{self.root}/{rel}" if rel else str(self.root)

    def file(self, rel: str) -> Path | "StoredFile":
        return StoredFile(self, rel) if self.remote else self.root / rel

    def rel_of(self, file: Path | "StoredFile") -> str:
        return file.rel if isinstance(file, StoredFile) else str(Path(file).relative_to(self.root))

    # --- reading -----------------------------------------------------------------------------

    def _call(self, rel: str, fn, *args, **kwargs):
        """A store call whose failure is an OSError naming the file (a missing one stays
        FileNotFoundError)."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except Exception as exc:
            if not is_store_error(exc):
                raise
            raise _as_os_error(exc, self.uri(rel)) from exc

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return (self.root / rel).exists()
        return self._call(rel, self.fs.exists, self._path(rel))

    def open(self, rel: str, mode: str = "rb") -> IO:
        if not self.remote:
            return open(self.root / rel, mode)
        return self._call(rel, self.fs.open, self._path(rel), mode)

    def read_bytes(self, rel: str) -> bytes:
        if not self.remote:
            return (self.root / rel).read_bytes()
        return self._call(rel, self.fs.cat_file, self._path(rel))

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def read_many(self, rels: list[str]) -> list[bytes]:
        """Several small files (completion records) in order: a store fetches them concurrently,
        not one request after another."""
        if not self.remote or len(rels) < 2:
            return [self.read_bytes(rel) for rel in rels]
        paths = [self._path(rel) for rel in rels]
        got = self._call(rels[0], self.fs.cat, paths)
        return [got[path] for path in paths]

    def size(self, rel: str) -> int:
        if not self.remote:
            return (self.root / rel).stat().st_size
        return int(self._call(rel, self.fs.size, self._path(rel)))

    def list(self, folder: str, pattern: str = "*") -> list[str]:
        """The files directly in `folder` whose names match `pattern`, as relative names, sorted;
        a folder that is not there has none."""
        if not self.remote:
            where = self.root / folder
            return sorted(f"{folder}/{p.name}" for p in where.glob(pattern) if p.is_file()) if where.is_dir() else []
        try:
            entries = self._call(folder, self.fs.ls, self._path(folder), detail=True)
        except FileNotFoundError:
            return []
        names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file"]
        return sorted(f"{folder}/{n}" for n in names if fnmatch.fnmatchcase(n, pattern))

    def walk(self, folder: str = "") -> list[str]:
        """Every file under `folder`, at any depth, as relative names, sorted."""
        if not self.remote:
            where = self.root / folder
            return sorted(str(p.relative_to(self.root)) for p in where.rglob("*") if p.is_file()) if where.is_dir() else []
        base = self._path("")
        try:
            found = self._call(folder, self.fs.find, self._path(folder) if folder else base)
        except FileNotFoundError:
            return []
        return sorted(name[len(base) + 1 :] for name in found if name.startswith(base + "/"))

    # --- writing -----------------------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> None:
        atomic_write(self.file(rel), data)

    def remove(self, rel: str) -> None:
        """Remove a file if it is there."""
        if not self.remote:
            (self.root / rel).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self._call(rel, self.fs.rm_file, self._path(rel))

    def remove_folder(self, folder: str) -> None:
        if not self.remote:
            shutil.rmtree(self.root / folder, ignore_errors=True)
            return
        for rel in self.walk(folder):
            self.remove(rel)

    @contextlib.contextmanager
    def open_for_writing(self, rel: str) -> Iterator[IO]:
        """A file that appears whole or not at all: a local one under a temporary name, renamed
        on success; a stored one as one upload, abandoned (never completed) on failure."""
        if not self.remote:
            path = self.root / rel
            tmp = path.with_name(path.name + ".tmp")
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(tmp, "wb") as handle:
                    yield handle
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
                raise
            return
        handle = self._call(rel, self.fs.open, self._path(rel), "wb")
        try:
            yield handle
        except BaseException:
            with contextlib.suppress(Exception):
                handle.discard()  # an unfinished multipart upload is aborted ...
            handle.closed = True  # ... and the buffer never sent: closing would complete the object
            raise
        self._call(rel, handle.close)

    def put_folder(self, local: Path, folder: str, skip: tuple[str, ...] = ()) -> list[str]:
        """Every file under a local folder written into `folder` of the run, each whole, by its
        name relative to `local` (except the names in `skip`): outputs a command draws on local
        disk, then puts into a run on a store. Returns the names written."""
        written = []
        for path in sorted(p for p in Path(local).rglob("*") if p.is_file()):
            name = path.relative_to(local).as_posix()
            if name not in skip:
                self.write(f"{folder}/{name}" if folder else name, path.read_bytes())
                written.append(name)
        return written

    def get_folder(self, folder: str, local: Path) -> list[str]:
        """Every file under `folder` of the run copied into a local folder (what a command that
        resumes from its earlier outputs, such as checkpoints, needs on local disk)."""
        got = []
        for rel in self.walk(folder):
            name = rel[len(folder) + 1 :] if folder else rel
            target = Path(local) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_bytes(rel))
            got.append(name)
        return got

    # --- reaching it -------------------------------------------------------------------------

    def check_reachable(self) -> None:
        """One call to the store before anything starts: missing credentials or an unreachable
        endpoint raise InputError (exit 2) naming the URI. A prefix not there yet is fine."""
        if not self.remote:
            return
        try:
            self.fs.info(self._path(""))
        except FileNotFoundError:
            return
        except Exception as exc:  # every store raises its own types
            raise InputError(failure_message(str(self.root), exc).replace("cannot read", "cannot reach", 1)) from None


def file_at(where: str | Path, io: dict[str, Any] | None = None) -> Path | "StoredFile":
    """One file by its full name, a local path or a URI on a store (an output a command was told
    to write elsewhere than into the run)."""
    if not is_remote(str(where)):
        return Path(where)
    parent, name = str(where).rstrip("/").rsplit("/", 1)
    return RunStore(parent, io).file(name)


@contextlib.contextmanager
def open_whole(file: Path | "StoredFile") -> Iterator[IO]:
    """`RunStore.open_for_writing` for a file as the store gives it out."""
    if isinstance(file, StoredFile):
        with file.store.open_for_writing(file.rel) as handle:
            yield handle
        return
    with RunStore(file.parent).open_for_writing(file.name) as handle:
        yield handle


def read_parquet(file: Path | "StoredFile", columns: list[str] | None = None) -> pa.Table:
    """A whole Parquet file as a table. A local file is read by its path: pyarrow 26 reading a
    Python file object on its thread pool leaves a thread that aborts the interpreter at exit
    ("terminate called without an active exception", exit 134); a stored file is read on one thread."""
    if isinstance(file, StoredFile):
        with file.open("rb") as handle:
            return pq.read_table(handle, columns=columns, use_threads=False)
    return pq.read_table(str(file), columns=columns)


def file_digest(file: Path | "StoredFile") -> tuple[str, int]:
    """sha256 and size of a file, read a chunk at a time."""
    digest, size = hashlib.sha256(), 0
    with file.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


class StoredFile:
    """One file on a store, with the Path methods the run's readers and writers use."""

    def __init__(self, store: RunStore, rel: str):
        self.store, self.rel = store, rel

    @property
    def name(self) -> str:
        return self.rel.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.store.uri(self.rel)

    __repr__ = __str__

    def __truediv__(self, part: str) -> "StoredFile":
        return StoredFile(self.store, f"{self.rel}/{part}")

    def relative_to(self, _root: Any) -> str:
        """Its name relative to the run's root, the one root a stored file is named from."""
        return self.rel

    def open(self, mode: str = "rb") -> IO:
        if "b" not in mode:
            return io_mod.TextIOWrapper(self.store.open(self.rel, mode.replace("t", "") + "b"), encoding="utf-8")
        return self.store.open(self.rel, mode)

    def exists(self) -> bool:
        return self.store.exists(self.rel)

    def read_bytes(self) -> bytes:
        return self.store.read_bytes(self.rel)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """One PUT: the object is there whole or not at all."""
        self.store._call(self.rel, self.store.fs.pipe_file, self.store._path(self.rel), data)

    def unlink(self, missing_ok: bool = False) -> None:
        if not missing_ok and not self.exists():
            raise FileNotFoundError(errno.ENOENT, "not found", str(self))
        self.store.remove(self.rel)
