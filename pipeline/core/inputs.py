"""Find the inputs of a run and describe each one as a small JSON-able record.

Records hold where to read the image, never its pixels, so planning stays cheap."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.annotations import AnnotationIndex, load_coco
from pipeline.core.sample_clip import SAMPLE_CLIP_LICENSE, sample_clip

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".webm"}
SAMPLES = "samples"
SAMPLES_ANNOTATIONS = Path(__file__).resolve().parents[1] / "samples" / "annotations.json"


class InputError(ValueError):
    pass


def samples_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def _walk_images(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
                yield Path(dirpath) / name


def _folder_records(root: Path, only: set[str] | None = None) -> list[dict[str, Any]]:
    records = []
    for path in _walk_images(root):
        key = path.relative_to(root).as_posix()
        if only is not None and key not in only:
            continue
        records.append({"key": key, "uri": str(path), "kind": _kind(path), "path": str(path)})
    return records


def _kind(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "file"


def _find_image_column(schema: pa.Schema, wanted: str | None) -> str:
    if wanted:
        if wanted not in schema.names:
            raise InputError(f"image column {wanted!r} not in the Parquet file (columns: {', '.join(schema.names)})")
        return wanted
    for field in schema:
        if pa.types.is_struct(field.type) and field.type.get_field_index("bytes") >= 0:
            return field.name
    for field in schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            return field.name
    raise InputError("no image column found in the Parquet file: set input.image_column")


def _parquet_records(path: Path, image_column: str | None, license_column: str) -> list[dict[str, Any]]:
    try:
        pfile = pq.ParquetFile(path)
    except Exception as exc:
        raise InputError(f"cannot read Parquet input {path}: {exc}") from None
    column = _find_image_column(pfile.schema_arrow, image_column)
    is_struct = pa.types.is_struct(pfile.schema_arrow.field(column).type)
    light = [c for c in (license_column,) if c in pfile.schema_arrow.names]
    records = []
    row = 0
    for batch in pfile.iter_batches(columns=[column, *light], batch_size=1024):
        paths = batch.column(column).field("path").to_pylist() if is_struct else [None] * batch.num_rows
        licenses = batch.column(license_column).to_pylist() if light else [None] * batch.num_rows
        for inner_path, lic in zip(paths, licenses):
            records.append(
                {
                    "key": f"{path.name}#{row}",
                    "match": inner_path,
                    "uri": f"{path}#row={row}" + (f"&path={inner_path}" if inner_path else ""),
                    "kind": "parquet",
                    "path": str(path),
                    "row": row,
                    "column": column,
                    "license": lic,
                }
            )
            row += 1
    return records


def discover(input_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """All inputs in a stable order, with annotations and licences attached."""
    spec = input_cfg["path"]
    annotations_path = input_cfg.get("annotations")
    if spec == SAMPLES:
        index = load_coco(annotations_path or SAMPLES_ANNOTATIONS)
        root = samples_dir()
        records = _folder_records(root, only=set(index.by_name))
        for record in records:
            record["uri"] = f"samples/{record['key']}"
        clip = sample_clip()
        records.append({"key": clip.name, "uri": f"samples/{clip.name}", "kind": "video", "path": str(clip), "license": SAMPLE_CLIP_LICENSE})
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise InputError(f"input not found: {spec}")
        if path.is_dir():
            records = _folder_records(path)
        elif path.suffix.lower() == ".parquet":
            records = _parquet_records(path, input_cfg.get("image_column"), input_cfg["license_column"])
        elif path.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            records = [{"key": path.name, "uri": str(path), "kind": _kind(path), "path": str(path)}]
        else:
            raise InputError(f"input must be a folder, a .parquet file, an image, a video, or 'samples': {spec}")
        index = load_coco(annotations_path) if annotations_path else None
    records.sort(key=lambda r: (r["key"], r.get("row", 0)))
    _attach_annotations(records, index, input_cfg.get("license"))
    return records


def _attach_annotations(records: list[dict[str, Any]], index: AnnotationIndex | None, default_license: str | None) -> None:
    basenames = Counter(Path(r.get("match") or r["key"]).name for r in records)
    for record in records:
        found = index.lookup(record.get("match") or record["key"], basenames) if index else None
        # None means "nothing known", [] means "annotated, with no objects"
        record["objects"] = found.objects if found else None
        record["license"] = record.get("license") or (found.license if found else None) or default_license
