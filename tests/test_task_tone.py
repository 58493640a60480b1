"""tone_transformation: every grade and every synthesised defect moves its stated statistic the
stated way (and the gate says so, and refuses the reverse); restoration rows carry the degraded
picture as source and the clean one as target; on the tiny profile only the season and
time-of-day rows reach the canny ControlNet, with the source's edges and their prompt."""

import cv2
import numpy as np
import pytest
import skimage.data

from filters.tone_gate import STATISTICS, tone_gate_results
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import resize_rgb
from stages.models.sd3_controlnet import canny_edges
from tasks import build_stages
from tasks.tone.render import CLASSICAL_TONE_EDITS, render_tone
from tasks.tone.vocabulary import TONE_EDITS
from tests.model_rows import pipeline_row, run_tiny_canny_recipe

TASK = "tone_transformation"


@pytest.fixture(scope="module")
def photo():
    return cv2.resize(skimage.data.coffee(), (192, 128), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def limits():
    return config.load_config("cpu")["tasks"][TASK]["gate"]


def _edit(name: str) -> dict:
    edit = TONE_EDITS[name]
    return {"name": name, "kind": edit.kind, "backend": edit.backend, "expect": [list(e) for e in edit.expect]}


@pytest.mark.parametrize("name", sorted(CLASSICAL_TONE_EDITS))
def test_each_classical_edit_moves_its_statistic_the_stated_way(name, photo, limits):
    source, target = render_tone(photo, name, seed=5)
    expect = TONE_EDITS[name].expect
    assert expect
    for statistic, direction in expect:
        before, after = STATISTICS[statistic](source), STATISTICS[statistic](target)
        if direction == "grey":
            assert after < 1.0 < before
        else:
            assert (after > before) == (direction == "up"), (statistic, before, after)
    results = tone_gate_results(source, target, _edit(name), limits)
    assert all(r.passed for r in results), results
    if any(direction != "grey" for _, direction in expect):  # the reverse edit is refused
        assert not all(r.passed for r in tone_gate_results(target, source, _edit(name), limits))


@pytest.mark.parametrize("name", ["dehaze", "derain", "low_light", "denoise"])
def test_restoration_pairs_are_degraded_source_and_clean_target(name, photo):
    source, target = render_tone(photo, name, seed=2)
    assert np.array_equal(target, photo)
    assert np.abs(source.astype(int) - photo).mean() > 3
    again, _ = render_tone(photo, name, seed=2)
    assert np.array_equal(source, again)  # seeded: reruns agree


def test_gate_refuses_an_untouched_picture_and_colour_left_in_black_and_white(photo, limits):
    assert not {r.name: r.passed for r in tone_gate_results(photo, photo, _edit("warm"), limits)}["image_change"]
    _, grey = render_tone(photo, "black_and_white", 0)
    tinted = np.clip(grey.astype(int) + [12, 0, -12], 0, 255).astype(np.uint8)
    assert not {r.name: r.passed for r in tone_gate_results(photo, tinted, _edit("black_and_white"), limits)}["chroma_grey"]


def test_tone_recipe_end_to_end_without_ray(photo):
    cfg = config.load_config("cpu")
    row = pipeline_row(photo, 0, TASK)
    row["source_sha256"] = "ab" * 32
    rows = [row]
    for stage in build_stages(TASK, cfg):
        rows = run_stage(stage, rows)
    task_cfg = cfg["tasks"][TASK]
    assert len(rows) == task_cfg["grades_per_image"] + task_cfg["restorations_per_image"]
    for r in rows:
        edit = schema.loads(r["edit"])
        assert edit["backend"] == "classical" and r["status"] == schema.OK, (edit["name"], r["reason"])
        tone = TONE_EDITS[edit["name"]]
        assert tone.en in r["instruction_en"] and tone.zh in r["instruction_zh"]
        source, target = decode_image(r["source_image"]["bytes"]), decode_image(r["target_image"]["bytes"])
        if edit["kind"] == "restore":
            assert np.array_equal(target, photo) and not np.array_equal(source, photo)
        else:
            assert np.array_equal(source, photo)


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    return config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])


def test_tiny_recipe_sends_only_scenes_to_the_canny_controlnet(tiny_cfg, photo, monkeypatch):
    controlnet, calls, rows, source = run_tiny_canny_recipe(TASK, tiny_cfg, photo, monkeypatch)
    assert all(r["status"] in (schema.OK, schema.REJECTED) for r in rows), [r.get("reason") for r in rows]
    edits = [schema.loads(r["edit"]) for r in rows]
    scenes = [e for e in edits if e["kind"] == "scene"]
    assert len(scenes) == tiny_cfg["tasks"][TASK]["scenes_per_image"] and len(edits) > len(scenes)
    assert sorted(p for call in calls for p in call["prompt"]) == sorted(TONE_EDITS[e["name"]].prompt for e in scenes)
    for call in calls:
        for control in call["control_image"]:
            control = np.asarray(control)
            assert np.array_equal(control, canny_edges(resize_rgb(source, control.shape[:2]), controlnet.canny_low, controlnet.canny_high))
    for r, edit in zip(rows, edits):
        ran = schema.loads(r["provenance"])["stages"]
        assert ("sd3_controlnet" in ran) == (edit["kind"] == "scene")
        if edit["kind"] == "scene":
            assert "edge_f1" in schema.loads(r["scores"])["gates"]
