"""The loss-curve and gallery PNGs of `verify`: they decode, scale with their inputs, and put pixels where they belong."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from editor.plots import (
    MISSING_FILL,
    gallery_layout,
    rolling_median,
    smoothing_window,
    wrap_text,
    write_gallery,
    write_loss_curve,
)
from pipeline.postrun.contact_sheet import cjk_font

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 200, 0)
C0_BLUE = np.array([0x1F, 0x77, 0xB4])  # matplotlib's first cycle colour
C1_ORANGE = np.array([0xFF, 0x7F, 0x0E])


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def solid(colour, height=32, width=32) -> np.ndarray:
    return np.full((height, width, 3), colour, np.uint8)


def has_colour(image: np.ndarray, colour: np.ndarray, tolerance: int = 6) -> bool:
    return bool((np.abs(image.astype(int) - colour).max(axis=2) <= tolerance).any())


def bbox_of(image: np.ndarray, colour) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero((image == np.array(colour)).all(axis=2))
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def decreasing(n=200, start=1.0, end=0.05):
    rng = np.random.default_rng(0)
    return [(step, float(start * (end / start) ** (step / n) * (1 + 0.1 * rng.random()))) for step in range(n)]


# ---------------------------------------------------------------- loss curve


def test_smoothing_window_is_a_twentieth_of_the_points():
    assert smoothing_window(200) == 10 and smoothing_window(10) == 1


def test_the_drawn_trend_ignores_a_single_spike():
    values = [0.1] * 20
    values[10] = 80.0
    assert rolling_median(values, 5) == pytest.approx([0.1] * 20)
    assert rolling_median([1, 2, 3, 4, 10], 3) == pytest.approx([1.5, 2, 3, 4, 7])


def test_loss_curve_renders_at_the_stated_size_and_depends_on_the_data(tmp_path):
    first = write_loss_curve(tmp_path / "a" / "loss.png", {"editor": decreasing()}, title="run")
    other = write_loss_curve(tmp_path / "b.png", {"editor": decreasing(start=3.0, end=0.5)}, title="run")
    a, b = pixels(first), pixels(other)
    assert a.shape == (495, 880, 3)  # 8 x 4.5 in at 110 dpi
    assert has_colour(a, C0_BLUE)
    assert not np.array_equal(a, b)


def test_each_curve_gets_its_own_colour_and_empty_curves_are_skipped(tmp_path):
    series = decreasing()
    both = pixels(write_loss_curve(tmp_path / "both.png", {"editor": series, "shuffled": decreasing(start=2.0)}))
    assert has_colour(both, C0_BLUE) and has_colour(both, C1_ORANGE)
    alone = pixels(write_loss_curve(tmp_path / "alone.png", {"editor": series}))
    with_empty = pixels(write_loss_curve(tmp_path / "with_empty.png", {"editor": series, "nothing": []}))
    assert np.array_equal(alone, with_empty)


def test_no_steps_still_writes_a_figure(tmp_path):
    image = pixels(write_loss_curve(tmp_path / "empty.png", {"editor": [], "shuffled": []}))
    assert image.shape == (495, 880, 3)
    assert not has_colour(image, C0_BLUE)
    assert (image.min(axis=2) < 160).any()  # the "no training steps" text


def test_non_finite_losses_do_not_break_the_log_axis(tmp_path):
    series = [(0, 1.0), (1, float("nan")), (2, 0.0), (3, float("inf")), (4, 0.4)]
    image = pixels(write_loss_curve(tmp_path / "nan.png", {"editor": series}))
    assert has_colour(image, C0_BLUE)


# ---------------------------------------------------------------- gallery

COLUMNS = ["source", "target", "editor"]


def example(images, **extra):
    return {"task": "recolor", "instruction": "make the car red", "images": images, **extra}


def test_gallery_grows_down_with_examples_and_across_with_columns(tmp_path):
    one = [example({"source": solid(BLUE)})]
    three = one * 3
    h1 = Image.open(write_gallery(tmp_path / "one.png", one, COLUMNS, cell=64)).size
    h3 = Image.open(write_gallery(tmp_path / "three.png", three, COLUMNS, cell=64)).size
    wide = Image.open(write_gallery(tmp_path / "wide.png", one, COLUMNS + ["x", "y"], cell=64)).size
    assert h3[1] >= h1[1] + 2 * 64 and h3[0] == h1[0]
    assert wide[0] >= h1[0] + 2 * 64 and wide[1] == h1[1]


def test_a_solid_image_lands_in_its_own_cell(tmp_path):
    cell = 80
    rows = [
        example({"source": solid(BLUE), "target": solid(RED), "editor": solid(GREEN)}),
        example({"source": solid(GREEN), "target": solid(BLUE)}),
    ]
    image = pixels(write_gallery(tmp_path / "g.png", rows, COLUMNS, cell=cell))
    layout = gallery_layout(rows, COLUMNS, cell=cell)
    left, top, right, bottom = layout.cell_box(0, 1)
    assert tuple(image[(top + bottom) // 2, (left + right) // 2]) == RED
    # independent of the layout helper: red fills exactly one square cell, right of the blue one of row 1
    red = bbox_of(image, RED)
    assert (red[2] - red[0], red[3] - red[1]) == (cell, cell)
    assert ((image == RED).all(axis=2)).sum() == cell * cell
    blue_boxes = bbox_of(image, BLUE)  # spans row 1 col 1 and row 2 col 2
    assert blue_boxes[0] < red[0] and red[1] == blue_boxes[1]


def test_images_are_scaled_with_nearest_keeping_aspect(tmp_path):
    checker = np.zeros((2, 4, 3), np.uint8)
    checker[0, :2] = RED
    checker[1, 2:] = BLUE  # the rest stays black
    rows = [example({"source": checker})]
    image = pixels(write_gallery(tmp_path / "n.png", rows, COLUMNS, cell=80))
    left, top, right, bottom = gallery_layout(rows, COLUMNS, cell=80).cell_box(0, 0)
    inside = image[top:bottom, left:right]
    red, blue = bbox_of(inside, RED), bbox_of(inside, BLUE)
    assert (red[2] - red[0], red[3] - red[1]) == (40, 20)  # 4x2 -> 80x40: each source pixel a 20px block
    assert (blue[2] - blue[0], blue[3] - blue[1]) == (40, 20)
    assert blue[0] == red[2] and blue[1] == red[3]
    colours = {tuple(c) for c in inside[red[1]:blue[3], red[0]:blue[2]].reshape(-1, 3)}
    assert colours == {RED, BLUE, (0, 0, 0)}  # no blended edges


def test_a_missing_label_leaves_a_grey_na_cell(tmp_path):
    rows = [example({"source": solid(BLUE), "editor": solid(GREEN)})]
    image = pixels(write_gallery(tmp_path / "m.png", rows, COLUMNS, cell=80))
    left, top, right, bottom = gallery_layout(rows, COLUMNS, cell=80).cell_box(0, 1)
    inside = image[top:bottom, left:right]
    assert tuple(inside[3, 3]) == MISSING_FILL and tuple(inside[-4, -4]) == MISSING_FILL
    centre = inside[30:50, 20:60]
    assert (centre.min(axis=2) < 150).any()  # the "n/a" text


def test_notes_and_long_instructions_make_room_for_themselves():
    plain = example({"source": solid(BLUE)})
    noted = example({"source": solid(BLUE)}, notes={"source": "L1 0.083"})
    wordy = example({"source": solid(BLUE)}, instruction="把这张照片变成水彩画风格，保留人物的面部细节" * 4)
    heights = [gallery_layout([row], COLUMNS, cell=64).height for row in (plain, noted, wordy)]
    assert heights[1] > heights[0] and heights[2] > heights[0]


def test_wrap_breaks_chinese_between_characters_and_latin_between_words():
    font = cjk_font(14)
    lines = wrap_text("保留人物的面部细节和背景的建筑轮廓" * 3, font, 150)
    assert len(lines) > 1 and all(font.getlength(line) <= 150 for line in lines)
    assert "".join(lines) == "保留人物的面部细节和背景的建筑轮廓" * 3
    words = wrap_text("remove the red car parked on the left side", font, 120)
    assert len(words) > 1 and " ".join(words).split() == "remove the red car parked on the left side".split()


def test_non_uint8_images_are_refused(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        write_gallery(tmp_path / "f.png", [example({"source": np.zeros((8, 8, 3), np.float32)})], COLUMNS)
