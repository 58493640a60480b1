"""The export folder every export format shares: an empty (or earlier-export) folder to write into,
shards recorded with their sha256 as they are written, then the dataset card and, last,
`export_manifest.json`, so a folder without the manifest is an unfinished export."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.postrun import dataset_card

MANIFEST = "export_manifest.json"
CARD = "README.md"
UNKNOWN_LICENSES = ("", "unknown", "none", "null", "n/a", "unspecified")


class ExportError(RuntimeError):
    pass


def license_known(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in UNKNOWN_LICENSES


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parquet_shard_names(count: int) -> list[str]:
    return [f"data/train-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


def _ours(to_dir: Path, path: Path) -> bool:
    rel = path.relative_to(to_dir)
    return str(rel) in (CARD, MANIFEST) or (rel.parts[0] == "data" and rel.name.startswith("train-"))


def prepare_folder(to_dir: Path) -> None:
    """An export goes to an empty folder, or replaces an earlier (or unfinished) export there;
    a folder holding anything else is refused."""
    to_dir.mkdir(parents=True, exist_ok=True)
    files = [p for p in to_dir.rglob("*") if p.is_file()]
    foreign = [p for p in files if not _ours(to_dir, p)]
    if foreign:
        raise ExportError(f"{to_dir} holds files that are not an export ({foreign[0].name}...); choose an empty folder")
    for path in files:
        path.unlink()


def write_file(to_dir: Path, name: str, data: bytes, rows: int | None = None) -> dict[str, Any]:
    """Write one file of the export; returns its manifest entry."""
    atomic_write(to_dir / name, data)
    entry: dict[str, Any] = {"path": name, "sha256": sha256(data), "bytes": len(data)}
    if rows is not None:
        entry["rows"] = rows
    return entry


def finish(to_dir: Path, card_info: dict[str, Any], files: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """The dataset card, then the manifest listing every file with its sha256; returns the manifest."""
    card = dataset_card.render_card(card_info).encode()
    files.append(write_file(to_dir, CARD, card))
    manifest = {**manifest, "files": files}
    # written last: a folder without it is an unfinished export
    atomic_write(to_dir / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def run_config_hash(run: RunDir) -> str | None:
    plan = run.read_plan()
    return plan.get("config_hash") if plan else None
