"""A PNG contact sheet of triplets: source | mask over source | target, with both instructions."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipeline.core.fonts import cjk_font as _cjk_font
from pipeline.core.run_dir import RunDir
from pipeline.core.run_store import read_parquet


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans CJK SC regular, from its pip package (pipeline/core/fonts.py)."""
    return _cjk_font("regular", size)


def _image(value: dict[str, Any] | None) -> Image.Image | None:
    if not value or not value.get("bytes"):
        return None
    return Image.open(io.BytesIO(value["bytes"])).convert("RGB")


def mask_overlay(source: Image.Image, mask: Image.Image | None) -> Image.Image:
    if mask is None:
        return source.copy()
    src = np.asarray(source).astype(np.float32)
    inside = np.asarray(mask.convert("L").resize(source.size)) > 127
    tinted = src.copy()
    tinted[inside] = 0.45 * src[inside] + 0.55 * np.array([255, 40, 160], np.float32)
    return Image.fromarray(tinted.astype(np.uint8))


def _tile(row: dict[str, Any], height: int, font, small) -> Image.Image:
    source, target = _image(row["source_image"]), _image(row["target_image"])
    panels = [source, mask_overlay(source, _image(row.get("mask"))), target]
    scale = height / source.height
    panels = [p.resize((max(1, int(p.width * scale)), height)) for p in panels]
    gap, text_h = 6, 58
    width = sum(p.width for p in panels) + gap * (len(panels) - 1)
    tile = Image.new("RGB", (width, height + text_h), "white")
    x = 0
    for panel in panels:
        tile.paste(panel, (x, 0))
        x += panel.width + gap
    draw = ImageDraw.Draw(tile)
    draw.text((4, height + 3), f"[{row['task']}] {row.get('instruction_en') or ''}", fill="black", font=font)
    draw.text((4, height + 22), row.get("instruction_zh") or "", fill="black", font=font)
    draw.text((4, height + 41), f"{row['status']}  {row.get('reason') or ''}"[:120], fill=(90, 90, 90), font=small)
    return tile


def pick_rows(run_dir: RunDir | Path | str, per_task: int, status: str | None = "ok") -> list[dict[str, Any]]:
    chosen: dict[str, list[dict[str, Any]]] = {}
    run = RunDir(run_dir)
    for rel in run.committed_files("candidates"):
        rows = read_parquet(run.store.file(rel)).to_pylist()
        for row in rows:
            if status and row["status"] != status:
                continue
            bucket = chosen.setdefault(row["task"], [])
            # one per source first, so a sheet shows variety
            if len(bucket) < per_task and all(r["source_uri"] != row["source_uri"] for r in bucket):
                bucket.append(row)
    return [row for task in sorted(chosen) for row in chosen[task]]


def render(rows: list[dict[str, Any]], out: Path, height: int = 220) -> Path:
    if not rows:
        raise ValueError("no rows to draw")
    font, small = cjk_font(15), cjk_font(12)
    tiles = [_tile(row, height, font, small) for row in rows]
    width = max(t.width for t in tiles)
    sheet = Image.new("RGB", (width + 16, sum(t.height + 12 for t in tiles) + 4), (235, 235, 235))
    y = 8
    for tile in tiles:
        sheet.paste(tile, (8, y))
        y += tile.height + 12
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
