"""What an input may say about its image beyond the bytes: caption, original URL and licence,
found under the names `input.caption_columns`, `input.url_columns` and `input.license_column`
(Parquet columns, manifest columns, a WebDataset sample's .json). They go into the row's
provenance, and the licence into its `license` column."""

from __future__ import annotations

from typing import Any, Mapping

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".webm"}


def field_names(input_cfg: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        "caption": list(input_cfg.get("caption_columns") or []),
        "url": list(input_cfg.get("url_columns") or []),
        "license": [input_cfg.get("license_column") or "license"],
    }


def wanted_columns(input_cfg: Mapping[str, Any], present: list[str]) -> list[str]:
    """The descriptive columns a table has, to read them and nothing heavier."""
    return [c for names in field_names(input_cfg).values() for c in names if c in present]


def described(values: Mapping[str, Any], input_cfg: Mapping[str, Any]) -> dict[str, str]:
    """caption, url and license from one row or sample, the first present name of each."""
    out = {}
    for field, names in field_names(input_cfg).items():
        for name in names:
            value = values.get(name)
            if value is not None and value != "":
                out[field] = str(value)
                break
    return out


def suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""
