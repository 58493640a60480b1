"""`models pull` and `models lock`: fetch each checkpoint a profile uses from the Hugging Face
hub (huggingface_hub's `model_info` resolves the commit, `snapshot_download` fetches it) and
record it in the model lock; or record folders that are already on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.core import models
from pipeline.core.file_hashes import HashCache
from pipeline.core.model_lock import local_source, record, write_lock

# weights in formats other than safetensors are never fetched, nor pictures from model cards
SKIPPED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".ot", ".pb", ".tflite",
                    ".png", ".jpg", ".jpeg", ".gif", ".webp")


def wanted_files(names: list[str]) -> list[str]:
    """The files of a hub repository that `from_pretrained` reads. A diffusers pipeline
    (model_index.json at the top) loads its components from their subfolders, so the
    single-file checkpoints some repositories also keep at the top (tens of GB) are skipped."""
    pipeline = "model_index.json" in names
    keep = []
    for name in names:
        if name.lower().endswith(SKIPPED_SUFFIXES) or Path(name).name.startswith("."):
            continue
        if pipeline and "/" not in name and name.endswith(".safetensors"):
            continue
        keep.append(name)
    return keep


def pull_one(entry: models.ModelEntry, to: Path | None) -> tuple[Path, str]:
    """Downloads one checkpoint; returns its folder and the commit it resolved to."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi().model_info(entry.ref, revision=entry.revision)
    files = wanted_files([s.rfilename for s in info.siblings or []])
    folder = snapshot_download(
        entry.ref, revision=info.sha, allow_patterns=files, local_dir=str(to / entry.family) if to else None
    )
    return Path(folder), info.sha


def pull(families: list[str], to: Path | None, lock: Path, log=print) -> list[str]:
    """Downloads and locks each family; returns the families that failed (each logged with why)."""
    entries, failed, locked = models.registry(), [], {}
    cache = HashCache()
    for family in families:
        entry = entries[family]
        try:
            folder, revision = pull_one(entry, to)
        except Exception as exc:  # offline, no hub, gated, a typo in the registry: say which model
            log(f"error: cannot download {family} ({entry.ref}): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            failed.append(family)
            continue
        locked[family] = record(folder, entry.ref, revision, "hub", cache)
        log(f"{family:18} {revision[:12]}  {len(locked[family]['files'])} files  {folder}")
    _save(locked, lock, cache, log)
    return failed


def lock_present(cfg: dict[str, Any], families: list[str], lock: Path, log=print) -> list[str]:
    """Locks the folders already on disk (models.ref.* folders, models.dir/<family>, or the hub
    cache's snapshot at the registry's revision); returns the families with no local files."""
    entries, missing, locked = models.registry(), [], {}
    cache = HashCache()
    for family in families:
        entry = entries[family]
        folder, source = local_source(cfg, family, entry.ref, entry.revision)
        if folder is None:
            log(f"error: {family}: no local files for {entry.ref} (pull it, or point models.ref.{family} at a folder)")
            missing.append(family)
            continue
        # a hub cache snapshot is named by its commit; a folder of our own has no hub commit
        revision = folder.name if source == "hub" and folder.parent.name == "snapshots" else entry.revision
        ref = str(folder) if source == "local" else entry.ref
        locked[family] = record(folder, ref, revision, source, cache)
        log(f"{family:18} {source:6} {len(locked[family]['files'])} files  {folder}")
    _save(locked, lock, cache, log)
    return missing


def _save(locked: dict[str, Any], lock: Path, cache: HashCache, log) -> None:
    """The hashes computed (so the next check reads nothing) and the lock, if anything was locked."""
    cache.save()
    if locked:
        write_lock(lock, locked)
        log(f"locked {len(locked)} model(s) in {lock}")
