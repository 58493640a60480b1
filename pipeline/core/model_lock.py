"""The model lock (configs/models.lock): for each registry family, the checkpoint's hub id, the
commit it resolved to, and every file's size and sha256, written by `models pull` (or by
`models lock` from folders already on disk). A run on `models.source: registry` checks the
files it is about to load against it before any actor starts, so every run uses exactly the
files that were pulled.

Where a family's files are looked for: its `models.ref.<family>` folder, else
`models.dir/<family>` (what `models pull --to DIR` writes), else the Hugging Face cache's
snapshot of the locked commit (found with `local_files_only`, so nothing is asked of the hub)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.core.config import CONFIG_DIR
from pipeline.core.file_hashes import HashCache, folder_files

LOCK_VERSION = 1


class ModelLockError(ValueError):
    """The files a run would load do not match the lock (or there is no lock)."""


def lock_path(cfg: dict[str, Any]) -> Path:
    return Path(cfg["models"]["lock"] or CONFIG_DIR / "models.lock")


def read_lock(path: Path) -> dict[str, Any] | None:
    try:
        lock = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ModelLockError(f"model lock {path} is not valid JSON: {exc}") from None
    if lock.get("version") != LOCK_VERSION or not isinstance(lock.get("models"), dict):
        raise ModelLockError(f"model lock {path} is not a version {LOCK_VERSION} lock")
    return lock


def write_lock(path: Path, entries: dict[str, dict[str, Any]]) -> None:
    """Merges `entries` into the lock at `path` (other families keep their records), atomically."""
    lock = read_lock(path) or {"version": LOCK_VERSION, "models": {}}
    lock["models"].update(entries)
    lock["models"] = dict(sorted(lock["models"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".models.lock.")
    with os.fdopen(fd, "w") as f:
        json.dump(lock, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def locked_revision(cfg: dict[str, Any], family: str) -> str | None:
    """The commit the lock holds for a hub checkpoint (None: not locked, or a local folder)."""
    try:
        lock = read_lock(lock_path(cfg))
    except ModelLockError:
        return None
    entry = (lock or {}).get("models", {}).get(family) or {}
    return entry.get("revision") if entry.get("source") == "hub" else None


def hub_snapshot(ref: str, revision: str | None) -> Path | None:
    """The Hugging Face cache's folder for `ref` at `revision`, without asking the hub."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, revision=revision, local_files_only=True))
    except Exception:  # not cached (the library raises several kinds): simply absent
        return None


def local_source(cfg: dict[str, Any], family: str, ref: str, revision: str | None) -> tuple[Path | None, str]:
    """(the folder holding the family's files, "local" or "hub") without touching the network."""
    override = cfg["models"]["ref"].get(family)
    if override:
        return (Path(override) if Path(override).is_dir() else None), "local"
    if cfg["models"]["dir"]:
        folder = Path(cfg["models"]["dir"]) / family
        return (folder if folder.is_dir() else None), "hub"
    return hub_snapshot(ref, revision), "hub"


def record(folder: Path, ref: str, revision: str | None, source: str, cache: HashCache) -> dict[str, Any]:
    """A lock entry for the files in `folder`."""
    files = {}
    for rel, path in folder_files(folder).items():
        size, sha = cache.digest(path)
        files[rel] = {"size": size, "sha256": sha}
    return {"ref": ref, "revision": revision, "source": source, "files": files}


def compare(family: str, locked: dict[str, Any], folder: Path, cache: HashCache) -> list[str]:
    """What differs between the lock's files and the folder's, one line each (empty: a match).
    Sizes are compared before any hashing, so a truncated file costs nothing to find."""
    problems = []
    present = folder_files(folder)
    for rel in sorted(set(locked["files"]) - set(present)):
        problems.append(f"{family}: {rel} is missing from {folder}")
    for rel in sorted(set(present) - set(locked["files"])):
        problems.append(f"{family}: {rel} in {folder} is not in the lock")
    for rel in sorted(set(present) & set(locked["files"])):
        want = locked["files"][rel]
        if os.path.getsize(present[rel]) != want["size"]:
            problems.append(f"{family}: {rel} is {os.path.getsize(present[rel])} bytes, the lock says {want['size']}")
        elif cache.digest(present[rel])[1] != want["sha256"]:
            problems.append(f"{family}: {rel} does not match its locked sha256 (changed or corrupted)")
    return problems


def check_families(cfg: dict[str, Any], refs: dict[str, str], cache: HashCache | None = None) -> list[str]:
    """Why the local files of the families in `refs` (family -> the registry's hub id) cannot be
    trusted, one line per problem (empty: all match the lock). Each line names the family."""
    families = sorted(refs)
    path = lock_path(cfg)
    lock = read_lock(path)
    if lock is None:
        return [f"{family}: no model lock at {path} (run `python -m pipeline models pull`, or `models lock` "
                f"for folders already here)" for family in families]
    cache = cache or HashCache()
    problems: list[str] = []
    for family in families:
        locked = lock["models"].get(family)
        if locked is None:
            problems.append(f"{family}: not in the model lock {path}")
            continue
        if locked["source"] == "hub" and not cfg["models"]["ref"].get(family) and locked["ref"] != refs[family]:
            problems.append(f"{family}: the lock holds {locked['ref']}, the registry now names {refs[family]}")
            continue
        if locked["source"] == "local" and not cfg["models"]["ref"].get(family):
            problems.append(f"{family}: locked from the folder {locked['ref']}; set models.ref.{family} to a folder with those files")
            continue
        folder, _ = local_source(cfg, family, locked["ref"], locked["revision"])
        if folder is None:
            where = cfg["models"]["ref"].get(family) or (f"{cfg['models']['dir']}/{family}" if cfg["models"]["dir"] else
                                                          f"the Hugging Face cache ({locked['ref']} at {locked['revision']})")
            problems.append(f"{family}: no local files in {where}")
            continue
        problems += compare(family, locked, folder, cache)
    cache.save()
    return problems


def verify_models(cfg: dict[str, Any], refs: dict[str, str], log=print) -> None:
    """Before a run on registry weights: refuse files that do not match the lock, unless
    `models.allow_unlocked` (`run --allow-unlocked`) says to go on, which is then logged.
    `refs`: family -> the registry's hub id, for the families the run loads."""
    if cfg["models"]["source"] != "registry" or not refs:
        return
    problems = check_families(cfg, refs)
    if not problems:
        return
    if cfg["models"]["allow_unlocked"]:
        log(f"warning: running with unlocked model files (--allow-unlocked): {'; '.join(problems)}")
        return
    raise ModelLockError("model files do not match the lock; pass --allow-unlocked to run anyway:\n  " + "\n  ".join(problems))
