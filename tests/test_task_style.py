"""style_transfer: every classical style still follows the source's edges and changes the
picture; the gate tells a restyle from an unrelated or shifted picture; the recipe runs end to
end without Ray; on the tiny profile the canny ControlNet gets the source's edges, no mask, and
the style's prompt."""

import cv2
import numpy as np
import pytest
import skimage.data

from filters.edges import edge_f1
from filters.style_gate import style_gate_results
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import resize_rgb
from stages.models.sd3_controlnet import canny_edges
from tasks import build_stages
from tasks.style.effects import RENDERERS
from tasks.style.vocabulary import style_names, style_prompt
from tests.model_rows import pipeline_row, run_tiny_canny_recipe

TASK = "style_transfer"


@pytest.fixture(scope="module")
def photo():
    return cv2.resize(skimage.data.astronaut(), (192, 192), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def limits():
    return config.load_config("cpu")["tasks"][TASK]["gate"]


@pytest.mark.parametrize("style", sorted(RENDERERS))
def test_each_style_follows_the_source_edges_and_changes_the_picture(style, photo, limits):
    out = RENDERERS[style](photo)
    assert out.shape == photo.shape and out.dtype == np.uint8
    results = {g.name: g for g in style_gate_results(photo, out, limits)}
    assert results["edge_f1"].passed, results["edge_f1"]
    assert results["image_change"].passed, results["image_change"]


def test_edge_agreement_rejects_other_layouts(photo, limits):
    other = cv2.resize(skimage.data.coffee(), (192, 192), interpolation=cv2.INTER_AREA)
    shifted = np.roll(photo, 24, axis=1)
    assert edge_f1(photo, photo) > 0.99
    assert edge_f1(photo, RENDERERS["cartoon"](photo)) > edge_f1(photo, shifted) + 0.2
    for wrong in (other, shifted, RENDERERS["cartoon"](other)):
        assert not {g.name: g.passed for g in style_gate_results(photo, wrong, limits)}["edge_f1"]
    assert not {g.name: g.passed for g in style_gate_results(photo, photo, limits)}["image_change"]


def test_style_recipe_end_to_end_without_ray(photo):
    cfg = config.load_config("cpu")
    row = pipeline_row(photo, 0, TASK)
    row["source_sha256"] = "ab" * 32
    rows = [row]
    for stage in build_stages(TASK, cfg):
        rows = run_stage(stage, rows)
    assert len(rows) == cfg["tasks"][TASK]["styles_per_image"]
    assert len({schema.loads(r["edit"])["style"] for r in rows}) == len(rows)
    for r in rows:
        edit = schema.loads(r["edit"])
        en, zh = style_names(edit["style"])
        assert en in r["instruction_en"] and zh in r["instruction_zh"]
        assert r["mask"] is None and r["status"] == schema.OK, r["reason"]
        target = decode_image(r["target_image"]["bytes"])
        assert np.array_equal(target, RENDERERS[edit["style"]](photo))


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    return config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])


def test_tiny_recipe_sends_canny_edges_and_the_style_prompt_to_the_controlnet(tiny_cfg, photo, monkeypatch):
    controlnet, calls, rows, source = run_tiny_canny_recipe(TASK, tiny_cfg, photo, monkeypatch)
    assert all(r["status"] in (schema.OK, schema.REJECTED) for r in rows)
    styles = [schema.loads(r["edit"])["style"] for r in rows]
    assert sorted(p for call in calls for p in call["prompt"]) == sorted(style_prompt(s) for s in styles)
    for call in calls:
        for control in call["control_image"]:
            control = np.asarray(control)
            expected = canny_edges(resize_rgb(source, control.shape[:2]), controlnet.canny_low, controlnet.canny_high)
            assert expected.any() and np.array_equal(control, expected)
    for r in rows:  # no mask: the whole picture is regenerated
        assert schema.loads(r["provenance"])["stages"]["sd3_controlnet"]["masked"] is False
        assert (decode_image(r["target_image"]["bytes"]) != source).any(axis=2).mean() > 0.5
