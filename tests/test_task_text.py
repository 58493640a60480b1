"""text_modification: the cpu recipe really rewrites the words (OCR reads them back) and touches
nothing outside the text box; the tiny recipe asks Florence-2 for OCR with regions and gives
Flux-Fill the text mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from filters.text_gate import (
    levenshtein,
    read_in_frame,
    text_gate_results,
    text_similarity,
    word_accuracy,
)
from pipeline.core import config, models, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import dilate, resize_mask
from stages.models.florence2 import OCR_WITH_REGION, parse_generation
from stages.models.tiny import ensure_tiny
from stages.ocr_rapid import read_text
from stages.text_layout import Frame, frame_from_quad, paint_text
from tasks import build_stages
from tasks.text.ocr_florence2 import Florence2OcrStage, texts_from_regions
from tasks.text.style import estimate_style
from tests.model_rows import pipeline_row, record_pipeline_calls

TASK = "text_modification"


def _row(rgb: np.ndarray, index: int = 0, objects: list | None = None) -> dict:
    row = pipeline_row(rgb, index, TASK, sample_id=f"unit{index}", work={"objects": objects or []})
    row["source_sha256"] = f"{index:02d}" * 32
    return row


def _run(stages, rows):
    for stage in stages:
        rows = run_stage(stage, rows)
    return rows


def _photo(name: str, long_side: int) -> np.ndarray:
    rgb = getattr(skimage.data, name)()
    scale = long_side / max(rgb.shape[:2])
    return cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _wall_with_text(text: str, angle: float) -> tuple[np.ndarray, Frame]:
    """A plaster-like wall (smooth shading plus fine grain) with dark bold words on it."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:240, 0:360]
    base = 170 + 30 * np.sin(xx / 90.0) + 15 * np.cos(yy / 70.0)
    wall = np.clip(base[..., None] * [1.0, 0.93, 0.82] + rng.normal(0, 3, (240, 360, 1)), 0, 255).astype(np.uint8)
    frame = Frame(180, 120, 190, 60, angle)
    return paint_text(wall, text, "bold", 44, (40, 30, 90), frame), frame


@pytest.fixture(scope="module")
def cpu_cfg():
    return config.load_config("cpu")


def test_edit_distance_and_word_accuracy():
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3
    assert text_similarity("CL0SED", "CLOSED") == pytest.approx(1 - 1 / 6)
    assert text_similarity("Sold out", "SOLDOUT") == 1.0  # case and spaces do not count
    assert text_similarity("", "OPEN") == 0.0
    assert word_accuracy("SOLDOUT", "SOLD OUT") == 1.0
    assert word_accuracy("SOLD 0UT", "SOLD OUT") == 0.5
    assert word_accuracy("休息中", "休息中") == 1.0 and word_accuracy("休息", "休息中") == 0.0


def test_a_rotated_frame_is_recovered_from_its_corners_in_any_order():
    frame = Frame(100.0, 80.0, 120.0, 30.0, 7.5)
    corners = frame.corners()
    again = frame_from_quad(corners[[2, 0, 3, 1]])
    assert again.cx == pytest.approx(100.0) and again.cy == pytest.approx(80.0)
    assert again.width == pytest.approx(120.0) and again.height == pytest.approx(30.0)
    assert again.angle == pytest.approx(7.5)


def test_style_of_drawn_words_is_measured_back():
    wall, frame = _wall_with_text("SALE", 5.0)
    style = estimate_style(wall, frame, "SALE")
    assert abs(style["font_px"] - 44) <= 4
    assert style["weight"] == "bold"
    assert np.abs(np.subtract(style["text_rgb"], (40, 30, 90))).max() <= 25
    assert np.mean(style["bg_rgb"]) > 120  # the wall, not the ink


def test_photo_without_text_gets_a_sign_whose_words_are_rewritten(cpu_cfg):
    photo = _photo("coffee", 360)
    rows = _run(build_stages(TASK, cpu_cfg), [_row(photo, objects=[{"label": "cup", "bbox": [100, 10, 150, 170]}])])
    assert len(rows) == 2 and len({r["sample_id"] for r in rows}) == 2  # the sign's English and Chinese line
    langs = set()
    for row in rows:
        edit = schema.loads(row["edit"])
        langs.add(edit["lang"])
        assert row["status"] == schema.OK, row["reason"]
        assert edit["origin"] == "rendered_sign" and edit["old_text"] != edit["new_text"]
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        mask = decode_mask(row["mask"]["bytes"])
        assert not np.array_equal(source, photo)  # the source is the photo with the sign on it
        assert np.array_equal(target[~mask], source[~mask])  # nothing outside the text box changed
        assert mask.mean() < 0.1
        # OCR reads the old words in the source and the new ones in the target, in the same place
        frame = Frame.from_dict(edit["edit_frame"])
        assert text_similarity(read_in_frame(source, frame), edit["old_text"]) >= 0.8
        assert text_similarity(read_in_frame(target, frame), edit["new_text"]) >= 0.8
        quoted = (f'"{edit["old_text"]}"', f'"{edit["new_text"]}"')
        assert all(q in row["instruction_en"] for q in quoted), row["instruction_en"]
        assert f"“{edit['old_text']}”" in row["instruction_zh"] and f"“{edit['new_text']}”" in row["instruction_zh"]
        gates = schema.loads(row["scores"])["gates"]
        assert gates["ocr_ned"]["value"] >= 0.8 and gates["outside_change"]["value"] == 0.0
    assert langs == {"en", "zh"}


def test_text_already_in_the_photo_is_erased_and_redrawn_in_its_style(cpu_cfg):
    wall, frame = _wall_with_text("SALE", -6.0)
    rows = _run(build_stages(TASK, cpu_cfg), [_row(wall, 1)])
    assert len(rows) == 1
    row = rows[0]
    edit = schema.loads(row["edit"])
    assert edit["origin"] == "ocr" and edit["old_text"] == "SALE"
    assert row["status"] == schema.OK, row["reason"]
    assert edit["angle_deg"] == pytest.approx(-6.0, abs=2.0)
    source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
    assert np.array_equal(source, wall)  # no sign: the photo had text of its own
    mask = decode_mask(row["mask"]["bytes"])
    assert np.array_equal(target[~mask], source[~mask])
    lines = read_text(target)
    # the old word is gone, the new one reads (PP-OCR drops the space between two words)
    assert [line["text"].replace(" ", "") for line in lines] == [edit["new_text"].replace(" ", "")]
    drawn = estimate_style(target, Frame.from_dict(edit["edit_frame"]), edit["new_text"])
    # drawn at the size the edit chose: the measured 44 px, or smaller where a longer word had to fit
    scaled = schema.loads(row["provenance"])["stages"]["text_propose"]["font_scaled"]
    assert edit["font_px"] == 44 or (scaled and edit["font_px"] < 44)
    assert abs(drawn["font_px"] - edit["font_px"]) <= 5 and np.abs(np.subtract(drawn["text_rgb"], (40, 30, 90))).max() <= 30


def test_gate_rejects_the_wrong_words_and_a_leak(cpu_cfg):
    limits = cpu_cfg["tasks"][TASK]["gate"]
    source = np.full((60, 80, 3), 120, np.uint8)
    target = source.copy()
    mask = np.zeros((60, 80), bool)
    mask[20:40, 20:60] = True
    target[mask] = 30
    good = {g.name: g.passed for g in text_gate_results(source, target, mask, "CLOSED", "CLOSED", limits)}
    assert all(good.values())
    wrong = {g.name: g.passed for g in text_gate_results(source, target, mask, "OPEN", "CLOSED", limits)}
    assert not wrong["ocr_ned"] and not wrong["ocr_word_accuracy"]
    leaked = target.copy()
    leaked[:10] = 0
    assert not {g.name: g.passed for g in text_gate_results(source, leaked, mask, "CLOSED", "CLOSED", limits)}["outside_change"]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])
    ensure_tiny(cfg, ["florence2", "flux_fill"], log=lambda message: None)
    return cfg


def test_florence_ocr_answers_become_text_lines(tiny_cfg):
    ref, _ = models.resolve(tiny_cfg, "florence2")
    stage = Florence2OcrStage(ref, (TASK,))
    stage.setup()
    answer = "</s><s>OPEN<loc_100><loc_200><loc_300><loc_200><loc_300><loc_400><loc_100><loc_400>营业中<loc_0><loc_0><loc_0><loc_0><loc_0><loc_0><loc_0><loc_0></s>"
    parsed = parse_generation(stage.florence.processor, answer, OCR_WITH_REGION, (640, 480))
    lines = texts_from_regions(parsed, 640, 480)
    assert [line["text"] for line in lines] == ["OPEN"]  # the degenerate quad is dropped
    assert lines[0]["quad"] == [[64, 96], [192, 96], [192, 192], [64, 192]]


def test_tiny_recipe_reads_with_florence_ocr_and_erases_the_text_mask_with_flux_fill(tiny_cfg, monkeypatch):
    stages = build_stages(TASK, tiny_cfg)
    names = [s.name for s in stages]
    assert names.index("florence2_ocr") < names.index("text_propose") < names.index("flux_fill") < names.index("text_render")
    ocr = next(s for s in stages if s.name == "florence2_ocr")
    fill = next(s for s in stages if s.name == "flux_fill")
    for stage in (ocr, fill):
        stage.setup()
    asked = []
    original = ocr.generate
    monkeypatch.setattr(ocr, "generate", lambda images, prompts: asked.extend(prompts) or original(images, prompts))
    calls = record_pipeline_calls(fill.pipe, monkeypatch)
    rows = _run(stages, [_row(_photo("astronaut", 128))])
    assert asked == [OCR_WITH_REGION]
    assert rows and all(r["status"] in (schema.OK, schema.REJECTED) for r in rows), [r.get("reason") for r in rows]
    sent = [np.asarray(m) > 127 for call in calls for m in call["mask_image"]]
    prompts = [p for call in calls for p in call["prompt"]]
    assert len(sent) == len(rows)
    for row in rows:
        edit = schema.loads(row["edit"])
        mask = decode_mask(row["mask"]["bytes"])
        size = (calls[0]["height"], calls[0]["width"])
        assert any(np.array_equal(m, resize_mask(dilate(mask, fill.mask_dilate_px), size)) for m in sent)
        assert edit["prompt"] in prompts and "no text" in edit["prompt"]
        record = provenance(row)["stages"]
        assert record["florence2_ocr"]["prompt"] == OCR_WITH_REGION
        assert record["florence2_ocr"]["model"] == models.resolve(tiny_cfg, "florence2")[0]
        assert record["flux_fill"]["model"] == models.resolve(tiny_cfg, "flux_fill")[0]
        # random weights read nothing: the rendered sign stood in, and the row says so
        assert edit["origin"] == "rendered_sign"
        assert any(f["stage"] == "florence2_ocr" for f in provenance(row)["fallbacks"])
