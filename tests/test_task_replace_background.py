"""subject_replace and background_change: the cpu recipes on real sample photos (what the edit did
against what its `edit` says). The model path (the MLLM's choice and its fallback, which model got
which conditioning): test_task_replace_background_models.py."""

from __future__ import annotations

import numpy as np
import pytest

from filters.background_gate import background_gate_results
from filters.edges import structure_similarity
from filters.replace_gate import replace_gate_results
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import work
from pipeline.engine.stage_runner import run_stage
from stages.grabcut_mask import clean_mask, grabcut_from_box
from stages.lab_recolor import recolor
from tasks import build_stages
from tasks.background.bank import render
from tasks.background.composite import composite
from tasks.background.recipe import BackgroundProposeStage
from tasks.background.scenes import BACKDROPS
from tasks.replace.object_bank import donor_bank, donors_for
from tasks.replace.poisson_paste import poisson_replace
from tests.sample_rows import sample_row

REPLACE, BACKGROUND = "subject_replace", "background_change"


def run_recipe(task: str, cfg: dict, rows: list[dict]) -> list[dict]:
    stages = build_stages(task, cfg)
    for stage in stages:
        stage.setup()
    for stage in stages:
        rows = run_stage(stage, rows)
    return rows


@pytest.fixture(scope="module")
def cpu_cfg():
    return config.load_config("cpu")


@pytest.fixture(scope="module")
def bank(cpu_cfg):
    donors = cpu_cfg["tasks"][REPLACE]["donors"]
    return donor_bank(tuple(donors["labels"]), donors["max_side"], 5, donors["min_mask_fraction"], donors["max_box_fraction"])


def _coffee_cup(long_side: int = 300):
    row = sample_row("coffee.png", REPLACE, long_side)
    rgb = decode_image(row["source_image"]["bytes"])
    cup = next(o for o in work(row)["objects"] if o["label"] == "cup")
    return row, rgb, cup, clean_mask(grabcut_from_box(rgb, cup["bbox"], 5, 0.02, 0))


# -- subject_replace, cpu ------------------------------------------------------------------------


def test_donor_bank_never_offers_the_rows_own_picture_or_its_kind(bank):
    labels = {d.label for d in bank}
    assert {"cup", "motorcycle", "person"} <= labels
    for donor in bank:
        assert donor.rgb.shape[:2] == donor.alpha.shape and donor.alpha.mean() > 0.15
    row, *_ = _coffee_cup()
    offered = donors_for(bank, row["source_sha256"], "coffee.png", "cup")
    assert offered and all(d.source != "coffee.png" and d.label != "cup" for d in offered)
    # the same bytes under another name are still the same picture
    assert all(d.source != "coffee.png" for d in donors_for(bank, row["source_sha256"], "renamed/x.png", "spoon"))


def test_poisson_replace_touches_only_its_region_and_puts_a_new_thing_there(bank, cpu_cfg):
    _, rgb, cup, mask = _coffee_cup()
    donor = next(d for d in bank if d.label == "motorcycle")
    target, region, placement = poisson_replace(rgb, mask, donor.rgb, donor.alpha, 4, 0.5, 6, 0.5, "telea", cup["bbox"])
    assert np.array_equal(target[~region], rgb[~region])
    assert (region & mask).sum() == mask.sum()  # the whole old object was redrawn
    x, y, w, h = placement["new_box_xywh"]
    assert 0 <= x and 0 <= y and x + w <= rgb.shape[1] and y + h <= rgb.shape[0]
    limits = cpu_cfg["tasks"][REPLACE]["gate"]
    gates = {g.name: g for g in replace_gate_results(rgb, target, region, limits)}
    assert all(g.passed for g in gates.values()), gates
    # a recoloured cup is the same thing: its edges stay put, so the replacement check fails it
    recoloured = recolor(rgb, mask, (30, 70, 200), 0.3, 3)
    assert structure_similarity(rgb, recoloured, mask) > 0.8
    assert not {g.name: g.passed for g in replace_gate_results(rgb, recoloured, mask, limits)}["structure_similarity"]
    leak = target.copy()
    leak[:20] = 255 - leak[:20]
    assert not {g.name: g.passed for g in replace_gate_results(rgb, leak, region, limits)}["outside_change"]


def test_replace_recipe_on_the_coffee_photo(cpu_cfg):
    rows = run_recipe(REPLACE, cpu_cfg, [sample_row("coffee.png", REPLACE, 320)])
    assert len(rows) >= 2 and len({r["sample_id"] for r in rows}) == len(rows)
    assert sum(r["status"] == schema.OK for r in rows) >= 1
    for row in rows:
        assert row["status"] in (schema.OK, schema.REJECTED), row.get("reason")
        edit = schema.loads(row["edit"])
        assert edit["donor"]["source"] != "coffee.png" and edit["new_object"] != edit["object"]
        assert edit["object"] in row["instruction_en"] and edit["new_object"] in row["instruction_en"]
        assert edit["slots_zh"]["new"] in row["instruction_zh"] and edit["slots_zh"]["old"] in row["instruction_zh"]
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        region = decode_mask(row["mask"]["bytes"])
        assert np.array_equal(target[~region], source[~region])
        assert set(schema.loads(row["scores"])["gates"]) == {"outside_change", "inside_change", "structure_similarity"}


# -- background_change, cpu ----------------------------------------------------------------------


def test_composite_keeps_the_subject_and_replaces_the_rest(cpu_cfg):
    row = sample_row("motorcycle_left.png", BACKGROUND, 320)
    rgb = decode_image(row["source_image"]["bytes"])
    bike = next(o for o in work(row)["objects"] if o["label"] == "motorcycle")
    subject = clean_mask(grabcut_from_box(rgb, bike["bbox"], 5, 0.02, 0))
    backdrop = render(BACKDROPS["brick_wall"], *rgb.shape[:2])
    target = composite(rgb, subject, backdrop, 3, 0.2)
    assert np.array_equal(target[~subject], backdrop[~subject])  # nothing of the old background survives
    limits = cpu_cfg["tasks"][BACKGROUND]["gate"]
    gates = {g.name: g for g in background_gate_results(rgb, target, ~subject, limits)}
    assert all(g.passed for g in gates.values()), gates
    assert gates["subject_change"].value < 8 and gates["background_change"].value > 40
    # a target that also redrew the subject, and one that left the background alone, both fail
    redrawn = target.copy()
    redrawn[subject] = 255 - redrawn[subject]
    assert not {g.name: g.passed for g in background_gate_results(rgb, redrawn, ~subject, limits)}["subject_change"]
    assert not {g.name: g.passed for g in background_gate_results(rgb, rgb, ~subject, limits)}["background_change"]


def test_background_recipe_on_the_coffee_photo(cpu_cfg):
    rows = run_recipe(BACKGROUND, cpu_cfg, [sample_row("coffee.png", BACKGROUND, 320)])
    assert len(rows) == cpu_cfg["tasks"][BACKGROUND]["per_input"]
    assert len({schema.loads(r["edit"])["scene"] for r in rows}) == len(rows)
    for row in rows:
        assert row["status"] in (schema.OK, schema.REJECTED), row.get("reason")
        edit = schema.loads(row["edit"])
        assert edit["subject"] == "saucer" and "cup" in edit["subject_parts"]  # the cup on the saucer goes with it
        assert edit["scene_en"] in row["instruction_en"] and edit["scene_zh"] in row["instruction_zh"]
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        background = decode_mask(row["mask"]["bytes"])
        expected = render(BACKDROPS[edit["backdrop"]], *source.shape[:2], seed=0)
        assert expected.shape == target.shape
        gates = schema.loads(row["scores"])["gates"]
        # whatever the verdict, the background moved far more than the subject did
        assert gates["background_change"]["value"] > 25 and gates["subject_change"]["value"] < gates["background_change"]["value"] / 4
        # the cup's white rim belongs to the subject, not to the background
        cx = int(edit["box_xywh"][0] + edit["box_xywh"][2] / 2)
        assert not background[int(source.shape[0] * 0.1) : int(source.shape[0] * 0.4), cx].all()
    assert sum(r["status"] == schema.OK for r in rows) >= 1


def test_a_photo_backdrop_never_comes_from_the_input_itself():
    stage = BackgroundProposeStage(0, 10, ["launch_site", "deep_space", "blue_sky"], render_backdrops=True)
    rocket = sample_row("rocket.jpg", BACKGROUND, 64)
    assert stage._choices(rocket, "rocket.jpg", {}) == ["deep_space", "blue_sky"]
    assert stage._choices(rocket, "elsewhere/renamed.jpg", {}) == ["deep_space", "blue_sky"]  # same bytes
    scenes = BackgroundProposeStage(0, 10, ["beach", "forest", "studio"], render_backdrops=False)
    assert scenes._choices(rocket, "rocket.jpg", {"tags": [{"label": "beach", "score": 0.9}]}) == ["forest", "studio"]
