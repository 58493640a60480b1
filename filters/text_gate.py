"""Gates for text edits: OCR of the target reads the new words where the old ones were (edit
similarity and word accuracy), the text region changed, and nothing outside it did."""

from __future__ import annotations

import cv2
import numpy as np

from filters.gate_stage import GateStage
from filters.gates import GateResult
from filters.mask_change import mask_change_results
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources
from stages.ocr_rapid import BACKEND, read_text
from stages.text_layout import Frame, frame_from_quad


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise(text: str) -> str:
    """What OCR comparisons ignore: case and spaces (readers often drop the space between words)."""
    return "".join(text.split()).casefold()


def text_similarity(read: str, expected: str) -> float:
    """NED similarity: 1 - Levenshtein / the longer length; 1 for equal, 0 for nothing alike."""
    a, b = normalise(read), normalise(expected)
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def word_accuracy(read: str, expected: str) -> float:
    """Share of the expected words read exactly; all of them when the whole line reads right."""
    words = expected.split()
    if not words:
        return 0.0
    if normalise(read) == normalise(expected):
        return 1.0
    seen = {normalise(w) for w in read.split()}
    return sum(normalise(w) in seen for w in words) / len(words)


def read_in_frame(rgb: np.ndarray, frame: Frame, margin: float = 0.6) -> str:
    """The text OCR reads inside `frame` (grown by `margin` of its height), in reading order."""
    grown = frame.grown(margin * frame.height, margin * frame.height)
    corners = grown.corners()
    height, width = rgb.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int).clip(0, [width, height])
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int).clip(0, [width, height])
    if x1 - x0 < 4 or y1 - y0 < 4:
        return ""
    lines = read_text(rgb[y0:y1, x0:x1], crop_mode=True)
    polygon = (corners - [x0, y0]).astype(np.float32)
    inside = []
    for line in lines:
        centre = frame_from_quad(line["quad"])
        if cv2.pointPolygonTest(polygon, (centre.cx, centre.cy), False) >= 0:
            inside.append((centre.cx, line["text"]))
    return " ".join(text for _, text in sorted(inside))


def text_gate_results(source, target, mask, read: str, new_text: str, limits: dict) -> list[GateResult]:
    return [
        *mask_change_results(source, target, mask, limits),
        GateResult.at_least("ocr_ned", text_similarity(read, new_text), limits["min_ocr_ned"]),
        GateResult.at_least("ocr_word_accuracy", word_accuracy(read, new_text), limits["min_word_accuracy"]),
    ]


class TextGateStage(GateStage):
    name = "text_gate"
    reads = ("source_image", "target_image", "mask", "edit", "scores?")
    writes = ("scores", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.5, batch_size=8)

    def results(self, source, target, mask, edit, row) -> list[GateResult]:
        read = read_in_frame(target, Frame.from_dict(edit["edit_frame"]))
        record_stage(row, self.name, ocr=BACKEND, read=read)
        return text_gate_results(source, target, mask, read, edit["new_text"], self.limits)
