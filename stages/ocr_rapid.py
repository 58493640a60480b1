"""OCR with PP-OCRv4 through rapidocr-onnxruntime: real detection and recognition weights that
ship inside the package (Chinese and English), so the cpu profile reads text with no download."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_stage, update_work
from pipeline.core.stage import Resources, Row, Stage

BACKEND = "rapidocr-onnxruntime (PP-OCRv4)"


@lru_cache(maxsize=2)
def reader(crop_mode: bool = False):
    """One reader per process. Whole photos use the package's detector settings (small images are
    enlarged); `crop_mode` reads small crops at their own size, which is several times faster."""
    from rapidocr_onnxruntime import RapidOCR

    if crop_mode:
        return RapidOCR(det_limit_type="max", det_limit_side_len=960)
    return RapidOCR()


def read_text(rgb: np.ndarray, crop_mode: bool = False) -> list[dict]:
    """Lines found in an RGB picture: {"text", "quad": [[x, y] x4], "score"} in its pixels."""
    result, _ = reader(crop_mode)(np.ascontiguousarray(rgb[..., ::-1]))  # the reader takes BGR
    lines = []
    for quad, text, score in result or []:
        lines.append({"text": str(text), "quad": [[round(float(x), 2), round(float(y), 2)] for x, y in quad], "score": round(float(score), 4), "source": "rapidocr"})
    return lines


class RapidOcrStage(Stage):
    """Text lines of the source, written as `texts` in the row's work state."""

    name = "rapidocr"
    reads = ("source_image",)
    writes = ("work.texts", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=2)  # onnxruntime threads on its own

    def __init__(self, tasks: tuple[str, ...]):
        self.tasks = tasks

    def setup(self) -> None:
        reader()

    def process_row(self, row: Row) -> Row:
        lines = read_text(decode_image(row["source_image"]["bytes"]))
        update_work(row, texts=lines)
        record_stage(row, self.name, backend=BACKEND, found=len(lines))
        return row
