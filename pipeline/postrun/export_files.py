"""The export folder every export format shares: an empty (or earlier-export) folder to write into,
shards recorded with their sha256 as they are written, then the dataset card and, last,
`export_manifest.json`, so a folder without the manifest is an unfinished export. The folder is a
`RunStore`: local, or on an object store by URI (every write one whole object)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pipeline.core.run_dir import RunDir, RunStore
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


def _ours(rel: str) -> bool:
    parts = rel.split("/")
    return rel in (CARD, MANIFEST) or (len(parts) == 2 and parts[0] == "data" and parts[1].startswith("train-"))


def prepare_folder(to: RunStore) -> None:
    """An export goes to an empty folder, or replaces an earlier (or unfinished) export there;
    a folder holding anything else is refused."""
    to.check_reachable()
    if not to.remote:
        to.root.mkdir(parents=True, exist_ok=True)
    files = to.walk()
    foreign = [rel for rel in files if not _ours(rel)]
    if foreign:
        raise ExportError(f"{to.root} holds files that are not an export ({foreign[0].rsplit('/', 1)[-1]}...); choose an empty folder")
    for rel in files:
        to.remove(rel)


def write_file(to: RunStore, name: str, data: bytes, rows: int | None = None) -> dict[str, Any]:
    """Write one file of the export; returns its manifest entry."""
    to.write(name, data)
    entry: dict[str, Any] = {"path": name, "sha256": sha256(data), "bytes": len(data)}
    if rows is not None:
        entry["rows"] = rows
    return entry


def finish(to: RunStore, card_info: dict[str, Any], files: list[dict[str, Any]], manifest: dict[str, Any]) -> dict[str, Any]:
    """The dataset card, then the manifest listing every file with its sha256; returns the manifest."""
    card = dataset_card.render_card(card_info).encode()
    files.append(write_file(to, CARD, card))
    manifest = {**manifest, "files": files}
    # written last: a folder without it is an unfinished export
    to.write(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    return manifest


def run_config_hash(run: RunDir) -> str | None:
    plan = run.read_plan()
    return plan.get("config_hash") if plan else None
