"""OCR with regions by Florence-2 (`<OCR_WITH_REGION>`): text lines and their quadrilaterals, in
the same `texts` format the cpu OCR writes. Loading and parsing are stages/florence2.py's own."""

from __future__ import annotations

import numpy as np

from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_fallback, record_stage, update_work
from pipeline.core.stage import Row
from stages.models.florence2 import (
    OCR_WITH_REGION,
    Florence2Stage,
    image_size,
    parse_generation,
)
from stages.models.torch_device import dtype_name

_NOISE_TOKENS = ("</s>", "<s>", "<pad>")


def texts_from_regions(parsed: dict, width: int, height: int, min_side: float = 2.0) -> list[dict]:
    """The parser's {"quad_boxes": [[x0, y0, ..., x3, y3]], "labels"} -> text lines with their
    corners clipped to the image; empty labels and degenerate quads dropped."""
    lines = []
    for flat, label in zip(parsed.get("quad_boxes", []), parsed.get("labels", [])):
        for token in _NOISE_TOKENS:
            label = label.replace(token, "")
        text = label.strip()
        if not text or len(flat) != 8:
            continue
        points = np.asarray(flat, np.float64).reshape(4, 2)
        points[:, 0] = points[:, 0].clip(0, width)
        points[:, 1] = points[:, 1].clip(0, height)
        if np.ptp(points[:, 0]) < min_side or np.ptp(points[:, 1]) < min_side:
            continue
        lines.append({"text": text, "quad": [[round(x, 2), round(y, 2)] for x, y in points.tolist()], "score": None, "source": "florence2"})
    return lines


class Florence2OcrStage(Florence2Stage):
    name = "florence2_ocr"
    reads = ("source_image",)
    writes = ("work.texts", "provenance")

    def process_batch(self, rows: list[Row]) -> list[Row]:
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        answers = self.generate(images, [OCR_WITH_REGION] * len(images))
        for row, rgb, answer in zip(rows, images, answers):
            width, height = image_size(rgb)
            lines = texts_from_regions(parse_generation(self.florence.processor, answer, OCR_WITH_REGION, (width, height)), width, height)
            update_work(row, texts=lines)
            if not lines:
                record_fallback(row, self.name, "Florence-2 read no text line")
            record_stage(
                row, self.name, model=self.model_ref, revision=self.revision, dtype=dtype_name(self.florence.dtype),
                prompt=OCR_WITH_REGION, found=len(lines),
            )
        return rows
