import numpy as np
import pytest
import skimage.data

from filters.color_gate import color_gate_results
from filters.hue import hue_distance, region_hue, rgb_hue
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, encode_png
from pipeline.engine.stage_runner import run_stage
from stages.grabcut_mask import clean_mask, grabcut_from_box
from stages.lab_recolor import recolor
from stages.vocabulary import COLORS
from tasks import build_stages


def _coffee_cup():
    rgb = skimage.data.coffee()
    box = [170.0, 15.0, 245.0, 285.0]
    return rgb, box


def test_grabcut_finds_the_cup_inside_its_box():
    rgb, box = _coffee_cup()
    mask = clean_mask(grabcut_from_box(rgb, box, iterations=3, margin=0.02, seed=0))
    x, y, w, h = map(int, box)
    inside_box = mask[y : y + h, x : x + w].sum()
    assert inside_box == mask.sum()  # nothing outside the box
    assert 0.3 < inside_box / (w * h) < 0.95


@pytest.mark.parametrize("color", ["red", "green", "blue", "purple"])
def test_recolour_moves_hue_inside_and_leaves_outside_untouched(color):
    rgb, box = _coffee_cup()
    mask = np.zeros(rgb.shape[:2], bool)
    mask[60:250, 200:380] = True
    target_rgb = COLORS[color][2]
    out = recolor(rgb, mask, target_rgb, lightness_shift=0.3, feather_px=3)
    assert np.array_equal(out[~mask], rgb[~mask])
    hue, saturation = region_hue(out, mask)
    assert hue_distance(hue, rgb_hue(target_rgb)) < 20
    # texture survives: lightness still varies inside the region as much as before
    grey = lambda a: a[mask].mean(axis=1)  # noqa: E731
    assert grey(out).std() > 0.6 * grey(rgb).std()


def test_gate_rejects_a_wrong_colour_and_a_leak():
    rgb, _ = _coffee_cup()
    mask = np.zeros(rgb.shape[:2], bool)
    mask[60:250, 200:380] = True
    limits = config.load_config("cpu")["tasks"]["color_alteration"]["gate"]
    good = recolor(rgb, mask, COLORS["blue"][2], 0.3, 3)
    assert all(g.passed for g in color_gate_results(rgb, good, mask, rgb_hue(COLORS["blue"][2]), limits))
    wrong = {g.name: g.passed for g in color_gate_results(rgb, good, mask, rgb_hue(COLORS["yellow"][2]), limits)}
    assert wrong["hue_error_deg"] is False
    leaked = good.copy()
    leaked[:50] = 255 - leaked[:50]
    assert {g.name: g.passed for g in color_gate_results(rgb, leaked, mask, rgb_hue(COLORS["blue"][2]), limits)}["outside_change"] is False
    noop = {g.name: g.passed for g in color_gate_results(rgb, rgb, mask, rgb_hue(COLORS["blue"][2]), limits)}
    assert noop["inside_change"] is False


def test_colour_recipe_end_to_end_without_ray():
    cfg = config.load_config("cpu")
    rgb = skimage.data.coffee()[::2, ::2].copy()  # 200 x 300
    row = {
        "sample_id": "x", "task": "color_alteration", "status": schema.PENDING, "_unit": "0:0:color_alteration",
        "_unit_rows": 1, "_shard": 0, "source_sha256": "ab" * 32,
        "_input": schema.dumps({"key": "coffee.png", "index": 0}),
        "source_image": schema.image_value(encode_png(rgb)), "width": 300, "height": 200,
        "_work": schema.dumps({"objects": [{"label": "saucer", "bbox": [37, 37, 203, 158]}, {"label": "person", "bbox": [0, 0, 100, 100]}]}),
    }
    rows = [row]
    for stage in build_stages("color_alteration", cfg):
        rows = run_stage(stage, rows)
    assert len(rows) == cfg["tasks"]["color_alteration"]["colors_per_object"]
    assert len({r["sample_id"] for r in rows}) == len(rows)
    for r in rows:
        edit = schema.loads(r["edit"])
        assert edit["object"] == "saucer"  # 'person' is excluded from recolouring
        assert r["status"] in (schema.OK, schema.REJECTED) and r["_unit_rows"] == len(rows)
        en_color, zh_color, _ = COLORS[edit["color"]]
        assert "saucer" in r["instruction_en"] and en_color in r["instruction_en"]
        assert "碟子" in r["instruction_zh"] and zh_color in r["instruction_zh"]
        target = decode_image(r["target_image"]["bytes"])
        mask = decode_image(r["mask"]["bytes"], "L") > 127
        assert np.array_equal(target[~mask], rgb[~mask])
        gates = schema.loads(r["scores"])["gates"]
        assert set(gates) == {"outside_change", "inside_change", "hue_error_deg", "target_saturation"}
        # the saucer is red: red itself is never proposed
        assert edit["color"] not in ("red",)
    assert sum(r["status"] == schema.OK for r in rows) >= 2
