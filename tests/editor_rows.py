"""Synthetic run folders for the editor's tests: smooth random photos with global edits that an
instruction decides (brighter or darker), so a model that reads the instruction can beat both
the identity and the mean-edit baselines, and one that cannot read it cannot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.core import schema
from pipeline.core.image_io import encode_png

EDITS = {
    "Make the photo brighter.": lambda x: x**0.4,
    "Make the photo darker.": lambda x: x**2.2,
}


def smooth_photo(seed: int, size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0.15, 0.85, size=(4, 4, 3))
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 3
    y0, x0 = np.floor(yy).astype(int).clip(0, 2), np.floor(xx).astype(int).clip(0, 2)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    top = coarse[y0, x0] * (1 - fx) + coarse[y0, x0 + 1] * fx
    bottom = coarse[y0 + 1, x0] * (1 - fx) + coarse[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy  # floats in [0, 1]


def tone_rows(sources: int, size: int = 64, task: str = "tone_transformation") -> list[dict]:
    rows = []
    for s in range(sources):
        photo = smooth_photo(s, size)
        src = encode_png((photo * 255).round().astype(np.uint8))
        for e, (instruction, edit) in enumerate(EDITS.items()):
            rows.append({
                "sample_id": f"{task[:4]}-{s:03d}-{e}", "task": task, "status": schema.OK,
                "source_image": schema.image_value(src),
                "target_image": schema.image_value(encode_png((edit(photo) * 255).round().astype(np.uint8))),
                "instruction_en": instruction, "instruction_zh": "调整亮度", "edit": schema.dumps({"edit": e}),
                "source_uri": f"file://photo-{s}.png", "source_sha256": f"sha-{task}-{s:03d}", "width": size, "height": size,
                "license": "cc0", "scores": "{}", "judge": "{}", "provenance": "{}",
            })
    return rows


def write_run(root: Path, rows: list[dict], hq: list[dict] | None = None) -> Path:
    for folder, part in (("candidates", rows), ("hq", hq)):
        if part is None:
            continue
        path = root / folder / "shard-00000.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(schema.to_output_table([dict(r) for r in part]), path)
    (root / "manifest.json").write_text(json.dumps({"rows": {"ok": len(rows)}}))
    return root
