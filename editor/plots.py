"""The two pictures `verify` leaves behind: a training-loss curve and a gallery of held-out edits.

Plain functions over numbers and uint8 arrays, no torch, so they can be tested and reused on their own.
The curve goes through matplotlib's object API (Figure + Agg canvas) and never touches pyplot, so the
process-wide backend and figure registry of other callers stay as they were.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter
from PIL import Image, ImageDraw

from pipeline.postrun.contact_sheet import cjk_font

LOSS_FIGSIZE = (8.0, 4.5)
LOSS_DPI = 110
SMOOTH_FRACTION = 0.05  # rolling-median window as a share of a curve's points
RAW_MARKERS_UP_TO = 60  # with few points, dots make single steps visible

MARGIN = 10
GAP = 8  # between cells, both ways
ROW_GAP = 14  # between examples
BACKGROUND = (255, 255, 255)
MISSING_FILL = (200, 200, 200)
TEXT = (20, 20, 20)
MUTED = (100, 100, 100)
RULE = (225, 225, 225)


# ---------------------------------------------------------------- loss curve


def rolling_median(values: list[float], window: int) -> list[float]:
    """Centred median over `window` points, truncated at the ends. The drawn trend uses it: one
    diverging batch (a loss of 80 among losses of 0.1) would lift a moving average over the whole
    window and draw a plateau that never happened."""
    if window <= 1 or len(values) < 2:
        return list(values)
    half = window // 2
    arr = np.asarray(values, dtype=np.float64)
    return [float(np.median(arr[max(0, i - half) : i + half + 1])) for i in range(len(arr))]


def smoothing_window(n_points: int) -> int:
    return max(1, round(n_points * SMOOTH_FRACTION))


def _plottable(points: list[tuple[int, float]]) -> tuple[list[int], list[float], int]:
    """Sorted steps and losses a log axis can show, plus how many points were left out
    (NaN, inf or <= 0), so a diverged run is reported rather than silently hidden."""
    kept = sorted((int(s), float(v)) for s, v in points if math.isfinite(float(v)) and float(v) > 0)
    return [s for s, _ in kept], [v for _, v in kept], len(points) - len(kept)


def write_loss_curve(path: Path, curves: dict[str, list[tuple[int, float]]], title: str = "") -> Path:
    path = Path(path)
    fig = Figure(figsize=LOSS_FIGSIZE, dpi=LOSS_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    drawn = 0
    for index, (name, points) in enumerate(curves.items()):
        steps, losses, hidden = _plottable(points or [])
        if not steps:
            continue
        colour = f"C{index % 10}"
        smooth = rolling_median(losses, smoothing_window(len(losses)))
        ax.plot(steps, losses, color=colour, alpha=0.3, linewidth=0.8,
                marker="o" if len(steps) <= RAW_MARKERS_UP_TO else None, markersize=3)
        label = f"{name} (last {smooth[-1]:.3g})"
        if hidden:
            label += f", {hidden} non-finite/non-positive hidden"
        ax.plot(steps, smooth, color=colour, linewidth=1.8, label=label)
        drawn += 1
    if drawn:
        ax.set_yscale("log")
        # plain decimals ("0.5") read better than 5x10^-1; minor ticks get labels only when the
        # curve spans so little that there would be almost no major ones
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        ax.yaxis.set_major_formatter(plain)
        low, high = ax.get_ylim()
        ax.yaxis.set_minor_formatter(plain if math.log10(high / low) < 1.5 else NullFormatter())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel("rectified-flow loss (MSE)")
        ax.grid(True, which="major", alpha=0.5)
        ax.grid(True, which="minor", alpha=0.15)
        ax.legend(loc="upper right", fontsize=9)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no training steps", ha="center", va="center", fontsize=16, color="0.4",
                transform=ax.transAxes)
    if title:
        ax.set_title(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=LOSS_DPI, facecolor="white")
    return path


# ---------------------------------------------------------------- gallery


def _text_height(font) -> int:
    ascent, descent = font.getmetrics()
    return ascent + descent


# Latin words and numbers stay whole; every other character (CJK included) may start a new line.
_TOKENS = re.compile(r"[^\s\u2E80-\uFFEF]+|\s+|.")


def wrap_text(text: str, font, max_width: int) -> list[str]:
    """Greedy wrap by measured width. Chinese has no spaces, so it breaks between characters;
    a single word wider than the line is cut by characters too."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for token in _TOKENS.findall(paragraph):
            if font.getlength(line + token) <= max_width:
                line += token
                continue
            if line.strip():
                lines.append(line.rstrip())
            line = "" if token.isspace() else token
            while font.getlength(line) > max_width and len(line) > 1:
                cut = len(line) - 1
                while cut > 1 and font.getlength(line[:cut]) > max_width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
    return lines


def _ellipsize(text: str, font, max_width: int) -> str:
    if font.getlength(text) <= max_width:
        return text
    while text and font.getlength(text + "…") > max_width:
        text = text[:-1]
    return text + "…"


def _as_image(array: Any) -> Image.Image:
    pixels = np.asarray(array)
    if pixels.dtype != np.uint8:
        raise ValueError(f"gallery images must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        return Image.fromarray(pixels, "L").convert("RGB")
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(pixels[:, :, :3]), "RGB")
    raise ValueError(f"gallery images must be HxW or HxWx3, got shape {pixels.shape}")


def fit_nearest(image: Image.Image, cell: int) -> Image.Image:
    """Scale (up or down) with NEAREST so the longer side is `cell`: pixels of a tiny model's
    output stay crisp squares instead of being blurred into something that looks better than it is."""
    scale = cell / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST)


@dataclass
class GalleryRow:
    top: int
    header: list[str]  # wrapped "[task] instruction" lines
    caption: list[str]  # wrapped caption lines, grey
    cells_top: int
    has_notes: bool
    bottom: int


@dataclass
class GalleryLayout:
    width: int
    height: int
    cell: int
    columns: list[str]
    labels_top: int
    rows: list[GalleryRow]

    def cell_left(self, column: int) -> int:
        return MARGIN + column * (self.cell + GAP)

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom), right/bottom exclusive."""
        left, top = self.cell_left(column), self.rows[row].cells_top
        return left, top, left + self.cell, top + self.cell


_FONTS: dict[str, Any] = {}


def _fonts() -> dict[str, Any]:
    if not _FONTS:
        _FONTS.update(header=cjk_font(14), label=cjk_font(13), small=cjk_font(11))
    return _FONTS


def gallery_layout(examples: list[dict], columns: list[str], cell: int = 160) -> GalleryLayout:
    """Where everything goes; measured once so drawing and tests agree on cell positions."""
    if not columns:
        raise ValueError("a gallery needs at least one column")
    fonts = _fonts()
    width = 2 * MARGIN + len(columns) * cell + (len(columns) - 1) * GAP
    text_width = width - 2 * MARGIN
    header_h, small_h = _text_height(fonts["header"]), _text_height(fonts["small"])
    labels_top = MARGIN
    y = labels_top + _text_height(fonts["label"]) + 6
    rows = []
    for example in examples:
        top = y
        header = wrap_text(f"[{example.get('task', '')}] {example.get('instruction', '')}".strip(),
                           fonts["header"], text_width)
        caption = wrap_text(example["caption"], fonts["small"], text_width) if example.get("caption") else []
        cells_top = top + len(header) * header_h + len(caption) * small_h + 4
        has_notes = any(example.get("notes", {}).get(label) for label in columns)
        bottom = cells_top + cell + (small_h + 3 if has_notes else 0)
        rows.append(GalleryRow(top, header, caption, cells_top, has_notes, bottom))
        y = bottom + ROW_GAP
    if not examples:
        y += header_h + ROW_GAP  # room for the "no examples" line
    return GalleryLayout(width, y - ROW_GAP + MARGIN, cell, list(columns), labels_top, rows)


def _centred_text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font, fill) -> None:
    left, top, right, bottom = box
    draw.text(((left + right) / 2, (top + bottom) / 2), text, font=font, fill=fill, anchor="mm")


def write_gallery(path: Path, examples: list[dict], columns: list[str], cell: int = 160) -> Path:
    path = Path(path)
    layout = gallery_layout(examples, columns, cell)
    fonts = _fonts()
    sheet = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for j, label in enumerate(columns):
        left = layout.cell_left(j)
        draw.text((left + cell / 2, layout.labels_top), _ellipsize(label, fonts["label"], cell),
                  font=fonts["label"], fill=TEXT, anchor="ma")
    if not examples:
        below_labels = layout.labels_top + _text_height(fonts["label"]) + 6
        draw.text((MARGIN, below_labels), "no examples", font=fonts["header"], fill=MUTED)
    header_h, small_h = _text_height(fonts["header"]), _text_height(fonts["small"])
    for i, (example, row) in enumerate(zip(examples, layout.rows)):
        if i:  # a faint rule keeps one example's notes from reading as the next one's header
            rule_y = row.top - ROW_GAP // 2
            draw.line([(MARGIN, rule_y), (layout.width - MARGIN, rule_y)], fill=RULE)
        y = row.top
        for line in row.header:
            draw.text((MARGIN, y), line, font=fonts["header"], fill=TEXT)
            y += header_h
        for line in row.caption:
            draw.text((MARGIN, y), line, font=fonts["small"], fill=MUTED)
            y += small_h
        images = example.get("images", {})
        notes = example.get("notes", {})
        for j, label in enumerate(columns):
            box = layout.cell_box(i, j)
            if images.get(label) is None:
                draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=MISSING_FILL)
                _centred_text(draw, box, "n/a", fonts["label"], MUTED)
            else:
                picture = fit_nearest(_as_image(images[label]), cell)
                # outline first: it marks the cell when the image is letterboxed or itself white
                draw.rectangle((box[0] - 1, box[1] - 1, box[2], box[3]), outline=RULE)
                sheet.paste(picture, (box[0] + (cell - picture.width) // 2, box[1] + (cell - picture.height) // 2))
            if notes.get(label):
                draw.text((box[0] + cell / 2, box[3] + 2), _ellipsize(str(notes[label]), fonts["small"], cell),
                          font=fonts["small"], fill=MUTED, anchor="ma")
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return path
