"""Inputs that are tables: a Parquet file whose rows hold images (an image struct of bytes and
path, as the Hugging Face hub stores them, or a bytes column), and a manifest (Parquet, CSV or
JSONL) whose rows name image URIs. Both are read in batches of the light columns only (never the
image bytes), one record per row."""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Iterator

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.core.filesystems import InputError, full_uri, is_remote
from pipeline.core.input_fields import (
    VIDEO_EXTENSIONS,
    described,
    suffix,
    wanted_columns,
)
from pipeline.core.input_guard import inside

BATCH = 4096
URI_COLUMNS = ("uri", "image_uri", "path", "image_path", "url")
MANIFEST_SUFFIXES = (".parquet", ".csv", ".jsonl")


def image_column(schema: pa.Schema, wanted: str | None) -> str | None:
    """The column holding images: `wanted`, else the first struct with `bytes`, else the first
    binary column; None when there is none (a manifest, or img2dataset's per-shard metadata)."""
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
    return None


def open_parquet(fs: fsspec.AbstractFileSystem, path: str):
    try:
        return pq.ParquetFile(fs.open(path, "rb") if is_remote(full_uri(fs, path)) else path)
    except Exception as exc:
        raise InputError(f"cannot read Parquet input {full_uri(fs, path)}: {exc}") from None


def parquet_image_records(pfile, fs, path: str, key: str, column: str, input_cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One record per row; `key#row` (key: the file's path relative to the input) names it."""
    uri = full_uri(fs, path)
    schema = pfile.schema_arrow
    is_struct = pa.types.is_struct(schema.field(column).type) and schema.field(column).type.get_field_index("path") >= 0
    light = wanted_columns(input_cfg, schema.names)
    columns = ([f"{column}.path"] if is_struct else []) + light
    row = 0
    batches = (b.to_pylist() for b in pfile.iter_batches(columns=columns, batch_size=BATCH)) if columns else _empty_batches(pfile)
    for values in batches:
        for item in values:
            inner = (item.get(column) or {}).get("path") if is_struct else None
            yield {
                "key": f"{key}#{row}",
                "match": inner,
                "uri": f"{uri}#row={row}" + (f"&path={inner}" if inner else ""),
                "kind": "parquet",
                "path": uri,
                "row": row,
                "column": column,
                **described(item, input_cfg),
            }
            row += 1


def _empty_batches(pfile) -> Iterator[list[dict]]:
    # no light column to read: only the row count matters (a batch of no columns has no rows)
    for group in range(pfile.metadata.num_row_groups):
        yield [{}] * pfile.metadata.row_group(group).num_rows


def manifest_records(fs: fsspec.AbstractFileSystem, path: str, key: str, input_cfg: dict[str, Any], pfile=None) -> Iterator[dict[str, Any]]:
    """One record per row naming an image: relative entries are resolved against the manifest's
    folder, on its filesystem; the entry as written is the record's key. A row without a URI,
    a JSONL line that does not parse, or (for a local manifest, unless input.follow_symlinks is
    `all`) a local path outside the manifest's folder is one record with a `problem` (an error row)."""
    uri = full_uri(fs, path)
    base = uri.rsplit("/", 1)[0] if "/" in uri else "."
    contained = not is_remote(uri) and input_cfg.get("follow_symlinks", "inside") != "all"
    column = input_cfg.get("uri_column")
    for row, item in enumerate(_manifest_rows(fs, path, pfile)):
        if isinstance(item, Exception):
            yield _bad_row(key, uri, row, f"manifest {uri}: entry {row} is not a JSON object: {item}")
            continue
        if row == 0 and column and column not in item:
            raise InputError(f"manifest {uri}: no column {column!r} (input.uri_column; columns: {', '.join(item)})")
        column = column or _uri_column(list(item), uri)
        entry = item.get(column)
        if entry is None or entry == "":
            yield _bad_row(key, uri, row, f"manifest {uri}: row {row} has no {column}")
            continue
        entry = str(entry)
        target = entry if "://" in entry or os.path.isabs(entry) else f"{base}/{entry}"
        if contained and not is_remote(target) and not inside(_local_path(target), _local_path(base)):
            yield _bad_row(key, uri, row, f"manifest {uri}: row {row} names {entry}, outside the manifest's folder (input.follow_symlinks: all allows it)")
            continue
        record = {"key": entry, "uri": target, "kind": "file", "path": target, **described(item, input_cfg)}
        if column == "url":
            record.setdefault("url", entry)
        if suffix(entry) in VIDEO_EXTENSIONS:
            record["kind"] = "video"
            if is_remote(target):
                record["problem"] = "videos are read from local files only (OpenCV reads their frames)"
        yield record


def _local_path(uri: str) -> str:
    return uri.split("://", 1)[1] if "://" in uri else uri


def _bad_row(key: str, uri: str, row: int, reason: str) -> dict[str, Any]:
    return {"key": f"{key}#{row}", "uri": f"{uri}#row={row}", "kind": "file", "path": "", "problem": reason}


def _uri_column(names: list[str], uri: str) -> str:
    for name in URI_COLUMNS:
        if name in names:
            return name
    raise InputError(f"manifest {uri}: no column of image URIs ({', '.join(URI_COLUMNS)}); set input.uri_column")


def _manifest_rows(fs, path: str, pfile=None) -> Iterator[dict[str, Any] | Exception]:
    ext = suffix(path)
    if ext == ".parquet":
        for batch in (pfile or open_parquet(fs, path)).iter_batches(batch_size=BATCH):
            yield from batch.to_pylist()
        return
    if ext not in (".csv", ".jsonl"):
        raise InputError(f"a manifest is a .parquet, .csv or .jsonl file: {full_uri(fs, path)}")
    with fs.open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        if ext == ".csv":
            yield from csv.DictReader(text)  # every value as written: no type guessing
            return
        for line in text:
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                yield exc
                continue
            yield value if isinstance(value, dict) else ValueError("not a JSON object")
