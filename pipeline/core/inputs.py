"""Find the inputs of a run and describe each one as a small JSON-able record.

Records hold where to read the image, never its pixels, so planning stays cheap. `iter_records`
yields them one at a time in a stable order (files by key, then rows or tar members in file
order), so a plan of millions of inputs never holds them all; `discover` is the list, for small
inputs and tools.

What a folder (local or on a store) holds, by file name: images and videos are one input each;
`.tar` files are WebDataset shards (`pipeline.core.webdataset`), one input per sample; `.parquet`
files with an image column are one input per row, and those without one are passed over
(img2dataset writes a metadata `.parquet` beside each tar). A single `.parquet` without an image
column, a `.csv` or a `.jsonl` is a manifest of image URIs (`input.format: manifest` says so for a
folder of them).

A local folder is read only where it stays inside (`pipeline.core.input_guard`): a symlink out of
it, a FIFO, a device or a socket becomes one error row naming the reason, and is never opened."""

from __future__ import annotations

from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

from pipeline.core.annotations import AnnotationIndex, load_coco
from pipeline.core.filesystems import (
    InputError,
    failure_message,
    filesystem,
    full_uri,
    is_remote,
    is_store_error,
    probe,
)
from pipeline.core.input_fields import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, suffix
from pipeline.core.input_guard import refusal
from pipeline.core.input_tables import (
    MANIFEST_SUFFIXES,
    image_column,
    manifest_records,
    open_parquet,
    parquet_image_records,
)
from pipeline.core.listing import iter_files
from pipeline.core.sample_clip import SAMPLE_CLIP_LICENSE, sample_clip
from pipeline.core.webdataset import tar_records

__all__ = ["IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS", "InputError", "discover", "iter_records", "reach_input", "samples_dir"]

SAMPLES = "samples"
SAMPLES_ANNOTATIONS = Path(__file__).resolve().parents[1] / "samples" / "annotations.json"


def samples_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def _kind(name: str) -> str:
    return "video" if suffix(name) in VIDEO_EXTENSIONS else "file"


def _file_record(key: str, uri: str) -> dict[str, Any]:
    record = {"key": key, "uri": uri, "kind": _kind(uri), "path": uri}
    if record["kind"] == "video" and is_remote(uri):
        record["problem"] = "videos are read from local files only (OpenCV reads their frames)"
    return record


def _records_of_file(fs, path: str, key: str, input_cfg: dict[str, Any], root: str | None) -> Iterator[dict[str, Any]]:
    """The inputs one file holds (none for a file a folder passes over). `root`: the folder it
    was listed in, None for a file named by the user."""
    ext = suffix(path)
    uri = full_uri(fs, path)
    in_folder = root is not None
    why = None if is_remote(uri) else refusal(path, root, input_cfg.get("follow_symlinks", "inside"))
    if why and not in_folder:
        raise InputError(f"input {input_cfg['path']}: {why}")
    if why:  # one error row, so the report names it; nothing is opened
        manifest = input_cfg.get("format") == "manifest" and ext in MANIFEST_SUFFIXES
        if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS or ext in (".tar", ".parquet") or manifest:
            yield {"key": key, "uri": uri, "kind": _kind(uri), "path": uri, "problem": f"refused: {why}"}
        return
    if input_cfg.get("format") == "manifest":
        if ext in MANIFEST_SUFFIXES:
            yield from manifest_records(fs, path, key, input_cfg)
        elif not in_folder:
            raise InputError(f"a manifest is a .parquet, .csv or .jsonl file: {input_cfg['path']}")
        return
    if ext in IMAGE_EXTENSIONS or ext in VIDEO_EXTENSIONS:
        yield _file_record(key, uri)
    elif ext == ".tar":
        yield from tar_records(fs, path, key, input_cfg)
    elif ext == ".parquet":
        pfile = open_parquet(fs, path)
        column = image_column(pfile.schema_arrow, input_cfg.get("image_column"))
        if column is not None:
            yield from parquet_image_records(pfile, fs, path, key, column, input_cfg)
        elif not in_folder:
            yield from manifest_records(fs, path, key, input_cfg, pfile)
    elif ext in MANIFEST_SUFFIXES and not in_folder:
        yield from manifest_records(fs, path, key, input_cfg)
    elif not in_folder:
        raise InputError(
            f"input must be a folder, an image, a video, a WebDataset .tar, a .parquet file, a manifest (.csv, .jsonl), "
            f"or 'samples': {input_cfg['path']}"
        )


def _raw_records(input_cfg: dict[str, Any], io_cfg: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    spec = input_cfg["path"]
    if not is_remote(spec):
        spec = str(Path(spec).expanduser())
    fs, root, info = probe(spec, io_cfg)
    try:
        if info["type"] == "directory":
            for listed in iter_files(fs, root):
                yield from _records_of_file(fs, listed.path, listed.key, input_cfg, root)
        else:
            yield from _records_of_file(fs, root, PurePosixPath(root).name, {**input_cfg, "path": spec}, None)
    except Exception as exc:  # the store failed half-way through the listing: the plan is redone on the rerun
        if isinstance(exc, InputError) or not is_store_error(exc):
            raise
        raise InputError(failure_message(spec, exc)) from None


def _samples() -> list[dict[str, Any]]:
    index = load_coco(SAMPLES_ANNOTATIONS)
    fs, root = filesystem(str(samples_dir()))
    records = [
        {"key": listed.key, "uri": f"samples/{listed.key}", "kind": "file", "path": listed.path}
        for listed in iter_files(fs, root)
        if listed.key in index.by_name
    ]
    clip = sample_clip()
    records.append({"key": clip.name, "uri": f"samples/{clip.name}", "kind": "video", "path": str(clip), "license": SAMPLE_CLIP_LICENSE})
    records.sort(key=lambda r: r["key"])
    return records


def iter_records(input_cfg: dict[str, Any], io_cfg: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every input, in a stable order, with annotations and licences attached. Raises
    InputError (before the first record) when the input cannot be reached or read."""
    annotations_path = input_cfg.get("annotations")
    if input_cfg["path"] == SAMPLES:
        index = load_coco(annotations_path or SAMPLES_ANNOTATIONS)
        samples = _samples()
        records: Iterator[dict[str, Any]] = iter(samples)
        basenames = _basename_counts(samples, index)
    else:
        index = load_coco(annotations_path) if annotations_path else None
        records = _raw_records(input_cfg, io_cfg)
        # a bare COCO file_name matches a nested input only when no other input has that name:
        # counted over a first pass, for the names the annotations hold (so memory stays theirs)
        basenames = _basename_counts(_raw_records(input_cfg, io_cfg), index) if index else None
    default_license = input_cfg.get("license")
    for record in records:
        found = _lookup(index, record, basenames)
        # None means "nothing known", [] means "annotated, with no objects"
        record["objects"] = found.objects if found else None
        record["license"] = record.get("license") or (found.license if found else None) or default_license
        yield record


def _match_name(record: dict[str, Any]) -> str:
    return record.get("match") or record["key"]


def _basename_counts(records: Iterable[dict[str, Any]], index: AnnotationIndex) -> Counter:
    counts: Counter = Counter()
    for record in records:
        base = PurePosixPath(_match_name(record)).name
        if base in index.by_name:
            counts[base] += 1
    return counts


def _lookup(index: AnnotationIndex | None, record: dict[str, Any], basenames: Counter | None):
    return index.lookup(_match_name(record), basenames) if index else None


def reach_input(input_cfg: dict[str, Any], io_cfg: dict[str, Any] | None = None) -> None:
    """Raise InputError, naming the URI, when the input cannot be reached now."""
    if input_cfg["path"] != SAMPLES:
        probe(input_cfg["path"] if is_remote(input_cfg["path"]) else str(Path(input_cfg["path"]).expanduser()), io_cfg)


def discover(input_cfg: dict[str, Any], io_cfg: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """All inputs as a list: for small inputs and tools; a run plans from `iter_records`."""
    return list(iter_records(input_cfg, io_cfg))
