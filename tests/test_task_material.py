"""material_modification: the cpu texture swap (outside untouched, texture inside, shading kept),
its gates, the recipe end to end without Ray, and on the tiny profile that the depth ControlNet
gets the depth map, the mask and the "{object} made of {material}" prompt."""

import numpy as np
import pytest
import skimage.data

from filters.material_gate import material_gate_results, shading_correlation
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import resize_rgb
from stages.material_shading import detail, region_correlation
from stages.material_textures import albedo
from stages.models.sd3_controlnet import SD3ControlNetStage, render_depth
from stages.models.tiny import ensure_tiny
from stages.models.zoedepth import read_depth
from tasks import build_stages
from tasks.material.swap import texture_swap
from tasks.material.vocabulary import material_names
from tests.model_rows import pipeline_row, record_pipeline_calls

TASK = "material_modification"


def _shaded_ball(size: int = 160):
    """A matte ball lit from the upper left on a striped backdrop, and its mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    centre, radius = size / 2, size * 0.35
    mask = (xx - centre) ** 2 + (yy - centre) ** 2 < radius**2
    nz = np.sqrt(np.clip(1 - ((xx - centre) ** 2 + (yy - centre) ** 2) / radius**2, 0, 1))
    light = np.clip(((centre - xx) / radius * 0.5 + (centre - yy) / radius * 0.5 + nz) / 1.7, 0.05, 1)
    rgb = np.zeros((size, size, 3), np.float32)
    rgb[...] = np.where((xx // 12) % 2 == 0, 60, 200)[..., None]  # the backdrop
    rgb[mask] = (light[mask, None] * np.array([90, 160, 220]))  # a blue ball
    return rgb.astype(np.uint8), mask


@pytest.mark.parametrize("material", ["wood", "marble", "brick", "moss"])
def test_textured_swap_keeps_outside_and_shading_and_shows_the_texture(material):
    rgb, mask = _shaded_ball()
    out = texture_swap(rgb, mask, material, texture_scale=0.5, shading_sigma=0.008, feather_px=2, seed=7)
    assert np.array_equal(out[~mask], rgb[~mask])
    assert shading_correlation(rgb, out, mask, 0.04) > 0.8  # the light on the ball is still there
    # the material's own pattern is what varies inside now, not the ball's old surface
    ys, xs = np.nonzero(mask)
    pattern = np.zeros_like(rgb)
    crop = albedo(material, ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min(), 0.5 * (ys.max() + 1 - ys.min()), 7)
    pattern[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = np.round(crop * 255).astype(np.uint8)
    inner = mask & (np.hypot(*np.mgrid[0:160, 0:160] - 80.0) < 50)  # away from the feathered edge
    assert region_correlation(detail(out, 2.0), detail(pattern, 2.0), inner) > 0.5
    assert np.abs(out[mask].astype(int) - rgb[mask]).mean() > 10


def test_gold_is_a_gold_tint_with_highlights_where_the_light_falls():
    rgb, mask = _shaded_ball()
    out = texture_swap(rgb, mask, "gold", 0.5, 0.008, 2, seed=1)
    r, g, b = (out[mask].astype(float).mean(axis=0))
    assert r > g > b + 30  # yellow, where the ball was blue
    light = rgb[..., 2].astype(float)
    brightest, darkest = light[mask].argmax(), light[mask].argmin()
    assert out[mask][brightest].min() > 200  # a near-white highlight at the lit side
    assert out[mask][darkest].max() < 120
    assert np.array_equal(out[~mask], rgb[~mask])


def test_gates_pass_a_swap_and_catch_a_leak_a_no_op_and_lost_shading():
    rgb, mask = _shaded_ball()
    limits = config.load_config("cpu")["tasks"][TASK]["gate"]
    good = texture_swap(rgb, mask, "wood", 0.5, 0.008, 2, seed=3)
    assert all(g.passed for g in material_gate_results(rgb, good, mask, limits))
    verdicts = lambda target: {g.name: g.passed for g in material_gate_results(rgb, target, mask, limits)}  # noqa: E731
    leaked = good.copy()
    leaked[:20] = 255 - leaked[:20]
    assert verdicts(leaked)["outside_change"] is False
    assert verdicts(rgb)["inside_change"] is False and verdicts(rgb)["detail_correlation"] is False
    flat = good.copy()  # the texture pasted with no shading: the ball's form is gone
    flat[mask] = np.round(albedo("wood", 160, 160, 80, 3)[mask] * 255).astype(np.uint8)
    assert verdicts(flat)["shading_correlation"] is False


def test_material_recipe_end_to_end_without_ray():
    cfg = config.load_config("cpu")
    rgb = skimage.data.coffee()[::2, ::2].copy()
    row = pipeline_row(rgb, 0, TASK, work={"objects": [{"label": "saucer", "bbox": [37, 37, 203, 158]}, {"label": "cat", "bbox": [0, 0, 100, 100]}]})
    row["source_sha256"] = "cd" * 32
    rows = [row]
    for stage in build_stages(TASK, cfg):
        rows = run_stage(stage, rows)
    assert len(rows) == cfg["tasks"][TASK]["materials_per_object"]
    assert len({r["sample_id"] for r in rows}) == len(rows)
    for r in rows:
        edit = schema.loads(r["edit"])
        assert edit["object"] == "saucer" and edit["prompt"].startswith("a saucer made of ")
        en, zh = material_names(edit["material"])
        assert en in r["instruction_en"] and "saucer" in r["instruction_en"]
        assert zh in r["instruction_zh"] and "碟子" in r["instruction_zh"]
        target, mask = decode_image(r["target_image"]["bytes"]), decode_mask(r["mask"]["bytes"])
        assert np.array_equal(target[~mask], rgb[~mask])
        assert set(schema.loads(r["scores"])["gates"]) == {"outside_change", "inside_change", "shading_correlation", "detail_correlation"}
    assert all(r["status"] == schema.OK for r in rows), [r["reason"] for r in rows]


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    return config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])


def test_tiny_recipe_feeds_depth_mask_and_material_prompt_to_the_depth_controlnet(tiny_cfg, monkeypatch):
    stages = build_stages(TASK, tiny_cfg)
    ensure_tiny(tiny_cfg, sorted({f for s in stages for f in s.loads}), log=lambda m: None)
    for stage in stages:
        if stage.uses_model:
            stage.setup()
    controlnet = next(s for s in stages if isinstance(s, SD3ControlNetStage))
    assert controlnet.control == "depth"
    calls = record_pipeline_calls(controlnet.pipe, monkeypatch)
    seen = []
    original = controlnet.control_image
    monkeypatch.setattr(controlnet, "control_image", lambda row, src, control: seen.append(read_depth(row)) or original(row, src, control))
    rgb = np.ascontiguousarray(skimage.data.coffee()[::4, ::4][:96, :144])
    row = pipeline_row(rgb, 0, TASK, work={"objects": [{"label": "cup", "bbox": [40, 5, 60, 70]}]})
    row["source_sha256"] = "ef" * 32
    rows = [row]
    for stage in stages:
        rows = run_stage(stage, rows)
    assert rows and all(r["status"] in (schema.OK, schema.REJECTED) for r in rows), [r.get("reason") for r in rows]
    prompts = [p for call in calls for p in call["prompt"]]
    assert sorted(prompts) == sorted(schema.loads(r["edit"])["prompt"] for r in rows)
    assert all(p.startswith("a cup made of ") for p in prompts)
    controls = [np.asarray(c) for call in calls for c in call["control_image"]]
    assert len(seen) == len(rows) and all(d is not None for d in seen)
    for depth, control in zip(seen, controls):  # the ZoeDepth map, rendered, is the conditioning
        assert depth.shape == rgb.shape[:2]
        assert np.array_equal(control, resize_rgb(render_depth(depth), control.shape[:2]))
    for r in rows:  # pasted back inside the SAM-2 mask only
        target, mask = decode_image(r["target_image"]["bytes"]), decode_mask(r["mask"]["bytes"])
        assert np.array_equal(target[~mask], rgb[~mask])
        assert schema.loads(r["provenance"])["stages"]["sd3_controlnet"]["masked"] is True
