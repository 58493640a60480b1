"""Text to edit for every input: the legible lines OCR found, or, for a photo without any, a
rendered sign (an English and a Chinese line on a plate) placed on its flattest area. With a
sign the row's source becomes the photo with the sign, so the edit changes only the words."""

from __future__ import annotations

import hashlib
import math
import random

import cv2
import numpy as np

from pipeline.core import schema
from pipeline.core.image_io import decode_image, encode_image
from pipeline.core.rows import mark, record_stage, unit_identity, update_work, work
from pipeline.core.stage import Resources, Row, Stage
from stages.text_layout import (
    Frame,
    frame_from_quad,
    ink_size,
    language,
    paint_text,
    patch_to_image,
)
from tasks.text.words import REPLACEMENTS, SIGN_TEXTS

# plate colour, ink colour
SIGN_STYLES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "red": ((196, 32, 38), (255, 255, 255)),
    "white": ((244, 243, 236), (28, 28, 30)),
    "green": ((22, 112, 64), (255, 255, 255)),
    "blue": ((26, 72, 160), (255, 255, 255)),
    "yellow": ((246, 200, 40), (24, 24, 24)),
    "black": ((28, 28, 30), (250, 250, 245)),
}
SIGN_WEIGHT = "bold"


def legible_lines(lines: list[dict], min_score: float, min_height_px: float, min_chars: int, width: int, height: int) -> list[dict]:
    """OCR lines worth editing, largest first, each with its frame."""
    kept = []
    for line in lines:
        frame = frame_from_quad(line["quad"])
        text = line["text"].strip()
        if line.get("score") is not None and line["score"] < min_score:
            continue
        if frame.height < min_height_px or len(text.replace(" ", "")) < min_chars:
            continue
        if not (0 <= frame.cx < width and 0 <= frame.cy < height):
            continue
        kept.append({**line, "text": text, "frame": frame.to_dict(), "lang": language(text), "kind": "photo"})
    kept.sort(key=lambda item: -item["frame"]["width"] * item["frame"]["height"])
    return kept


def flattest_window(rgb: np.ndarray, size: tuple[int, int], margin: int, avoid: list[list[float]]) -> tuple[int, int]:
    """Top-left (x, y) of the `size` (w, h) window with the least gradient, kept `margin` px from
    the borders and, where possible, off the `avoid` boxes (xywh). Ties go to the first in scan
    order, so the choice is deterministic."""
    height, width = rgb.shape[:2]
    w, h = size
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    integral = cv2.integral(gradient)
    blocked = np.zeros((height, width), np.float32)
    for x, y, bw, bh in avoid:
        blocked[int(max(0, y)) : int(y + bh), int(max(0, x)) : int(x + bw)] = 1.0
    blocked_integral = cv2.integral(blocked)
    step = max(2, min(width, height) // 48)
    x_hi, y_hi = max(margin, width - w - margin), max(margin, height - h - margin)
    best, best_cost = (margin, margin), float("inf")
    for y in range(margin, y_hi + 1, step):
        for x in range(margin, x_hi + 1, step):
            x1, y1 = min(width, x + w), min(height, y + h)
            area = max(1, (x1 - x) * (y1 - y))
            # flat around the sign too: a sign hangs on a wall, not on a small smooth patch
            gx0, gy0 = max(0, x - w // 4), max(0, y - h // 4)
            gx1, gy1 = min(width, x1 + w // 4), min(height, y1 + h // 4)
            grown_area = max(1, (gx1 - gx0) * (gy1 - gy0))
            mean = (integral[gy1, gx1] - integral[gy0, gx1] - integral[gy1, gx0] + integral[gy0, gx0]) / grown_area
            overlap = (blocked_integral[y1, x1] - blocked_integral[y, x1] - blocked_integral[y1, x] + blocked_integral[y, x]) / area
            cost = mean + 1000.0 * overlap
            if cost < best_cost:
                best, best_cost = (x, y), cost
    return best


def render_sign(
    rgb: np.ndarray, lines: list[str], style: str, angle: float, font_fraction: float, avoid: list[list[float]]
) -> tuple[np.ndarray, list[dict], dict]:
    """The photo with a plate carrying `lines`; returns it, one text item per line (frame, font,
    colours: everything the edit needs to redraw a line alike) and where the plate went."""
    height, width = rgb.shape[:2]
    plate_rgb, ink_rgb = SIGN_STYLES[style]
    px = max(12, int(round(font_fraction * min(width, height))))
    # the plate fits the widest word each line may become, so any replacement fits on it
    widest = lambda: max(ink_size(w, SIGN_WEIGHT, px)[0] for line in lines for w in [line, *REPLACEMENTS.get(line, [])])  # noqa: E731
    while px > 12 and widest() + 1.2 * px > 0.85 * width:
        px -= 1
    pad_x, pad_y, gap, slot = 0.6 * px, 0.45 * px, 0.6 * px, 1.15 * px
    plate_w = widest() + 2 * pad_x
    plate_h = 2 * pad_y + len(lines) * slot + (len(lines) - 1) * (gap - 0.15 * px)
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    box_w, box_h = int(math.ceil(c * plate_w + s * plate_h)), int(math.ceil(s * plate_w + c * plate_h))
    x, y = flattest_window(rgb, (box_w, box_h), max(2, int(0.03 * min(width, height))), avoid)
    plate = Frame(x + box_w / 2, y + box_h / 2, plate_w, plate_h, angle)

    out = _paste_plate(rgb, plate, plate_rgb, ink_rgb, px)
    to_image = plate.patch_to_image()
    items = []
    for i, text in enumerate(lines):
        centre_y = pad_y + slot / 2 + i * (slot + gap - 0.15 * px)
        cx, cy = to_image @ np.array([plate_w / 2, centre_y, 1.0])
        ink_w, _ = ink_size(text, SIGN_WEIGHT, px)
        frame = Frame(float(cx), float(cy), ink_w + 0.5 * px, slot, angle)
        out = paint_text(out, text, SIGN_WEIGHT, px, ink_rgb, frame)
        items.append(
            {
                "text": text, "quad": np.round(frame.corners(), 2).tolist(), "score": None, "source": "rendered",
                "frame": frame.to_dict(), "lang": language(text), "font_px": px, "weight": SIGN_WEIGHT,
                "text_rgb": list(ink_rgb), "bg_rgb": list(plate_rgb), "max_width": plate_w - 0.7 * px,
            }
        )
    placement = {"plate": plate.to_dict(), "style": style, "font_px": px}
    return out, items, placement


def _paste_plate(rgb: np.ndarray, plate: Frame, plate_rgb, ink_rgb, px: int) -> np.ndarray:
    """A rounded plate with a thin rim and a soft shadow, composited onto the photo."""
    w, h = plate.size()
    scale = 4  # drawn large, reduced: smooth corners
    big = np.zeros((h * scale, w * scale), np.uint8)
    radius = int(0.25 * px * scale)
    cv2.rectangle(big, (radius, 0), (w * scale - radius, h * scale), 255, -1)
    cv2.rectangle(big, (0, radius), (w * scale, h * scale - radius), 255, -1)
    for cx, cy in [(radius, radius), (w * scale - radius, radius), (radius, h * scale - radius), (w * scale - radius, h * scale - radius)]:
        cv2.circle(big, (cx, cy), radius, 255, -1, lineType=cv2.LINE_AA)
    alpha = cv2.resize(big.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_AREA)
    rim = max(1, int(round(0.08 * px)))
    inner = cv2.erode(
        (alpha > 0.5).astype(np.uint8), np.ones((2 * rim + 1, 2 * rim + 1), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0
    ).astype(np.float32)
    colour = np.empty((h, w, 3), np.float32)
    colour[:] = np.asarray(plate_rgb, np.float32)
    rim_rgb = 0.55 * np.asarray(plate_rgb, np.float32) + 0.45 * np.asarray(ink_rgb, np.float32)
    colour[inner < 0.5] = rim_rgb
    shape = rgb.shape[:2]
    laid_alpha = patch_to_image(alpha, plate, shape)
    laid_colour = patch_to_image(colour, plate, shape)
    offset = np.float32([[1, 0, 0.08 * px], [0, 1, 0.12 * px]])
    shadow = cv2.GaussianBlur(cv2.warpAffine(laid_alpha, offset, (shape[1], shape[0])), (0, 0), max(1.0, 0.15 * px))
    out = rgb.astype(np.float32) * (1.0 - 0.35 * shadow[..., None])
    out = out * (1.0 - laid_alpha[..., None]) + laid_colour * laid_alpha[..., None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def sign_rng(row: Row, seed: int) -> random.Random:
    key = f"{seed}|{unit_identity(row)}|sign"
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest(), 16))


class TextSourceStage(Stage):
    """Keeps the legible OCR lines as `texts`; with none, renders a sign (or skips the input when
    signs are turned off)."""

    name = "text_source"
    reads = ("work.texts", "work.objects", "width", "height", "source_image", "source_sha256", "_input", "task")
    writes = ("work.texts", "work.text_origin", "work.sign", "source_image", "status", "reason", "provenance")
    resources = Resources(num_cpus=0.25, batch_size=4)

    def __init__(self, tasks: tuple[str, ...], ocr: dict, sign: dict, seed: int):
        self.tasks = tasks
        self.ocr = dict(ocr)
        self.sign = dict(sign)
        self.seed = seed

    def process_row(self, row: Row) -> Row:
        state = work(row)
        lines = legible_lines(
            state.get("texts") or [], self.ocr["min_score"], self.ocr["min_height_px"], self.ocr["min_chars"], row["width"], row["height"]
        )
        if lines:
            update_work(row, texts=lines, text_origin="ocr")
            record_stage(row, self.name, origin="ocr", lines=len(lines), read=len(state.get("texts") or []))
            return row
        if not self.sign["enabled"]:
            return mark(row, schema.SKIPPED, f"{self.name}: no legible text in the image (signs are turned off)")
        rng = sign_rng(row, self.seed)
        en, zh, kind = SIGN_TEXTS[rng.randrange(len(SIGN_TEXTS))]
        style = rng.choice(sorted(SIGN_STYLES))
        angle = round(rng.uniform(-self.sign["max_angle_deg"], self.sign["max_angle_deg"]), 2)
        rgb = decode_image(row["source_image"]["bytes"])
        # the sign stays off the annotated objects where it can, except those filling the frame
        largest = self.sign["avoid_object_fraction"] * row["width"] * row["height"]
        avoid = [o["bbox"] for o in state.get("objects") or [] if o["bbox"][2] * o["bbox"][3] <= largest]
        signed, items, placement = render_sign(rgb, [en, zh], style, angle, self.sign["font_fraction"], avoid)
        for item in items:
            item["kind"] = kind
        row["source_image"] = schema.image_value(encode_image(signed), row["source_image"].get("path"))
        update_work(row, texts=items, text_origin="rendered_sign", sign={**placement, "kind": kind, "lines": [en, zh]})
        record_stage(row, self.name, origin="rendered_sign", kind=kind, lines=[en, zh], angle=angle, **placement)
        return row
