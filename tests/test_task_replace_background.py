"""subject_replace and background_change: the cpu recipes on real sample photos (what the edit did
against what its `edit` says), and the tiny model path (which model got which conditioning)."""

from __future__ import annotations

import hashlib

import cv2
import numpy as np
import pytest
from PIL import Image

from filters.background_gate import background_gate_results
from filters.edges import structure_similarity
from filters.replace_gate import replace_gate_results
from pipeline.core import config, schema
from pipeline.core.annotations import load_coco
from pipeline.core.image_io import decode_mask, decode_png, encode_png
from pipeline.core.inputs import SAMPLES_ANNOTATIONS, samples_dir
from pipeline.core.rows import provenance, work
from pipeline.engine.stage_runner import run_stage
from stages.candidates import mask_methods
from stages.diffusion_common import dilate, resize_mask
from stages.grabcut_mask import clean_mask, grabcut_from_box
from stages.lab_recolor import recolor
from stages.models.flux_fill import FluxFillStage
from stages.models.tiny import ensure_tiny
from tasks import build_stages
from tasks.background.bank import render
from tasks.background.composite import composite
from tasks.background.recipe import BackgroundProposeStage
from tasks.background.scenes import BACKDROPS, SCENES
from tasks.background.subject import subject_mask
from tasks.replace.choice import ReplaceChoiceStage
from tasks.replace.object_bank import donor_bank, donors_for
from tasks.replace.poisson_paste import poisson_replace
from tasks.replace.vocabulary import REPLACEMENTS, replacement_problem, with_article
from tests.model_rows import record_pipeline_calls

REPLACE, BACKGROUND = "subject_replace", "background_change"


def sample_row(name: str, task: str, long_side: int) -> dict:
    """A pending row for a bundled photo as decode leaves it: scaled, its boxes scaled alike, the
    source hash of the file's bytes."""
    path = samples_dir() / name
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB"))
    scale = long_side / max(rgb.shape[:2])
    rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    objects = [{**o, "bbox": [v * scale for v in o["bbox"]]} for o in load_coco(SAMPLES_ANNOTATIONS).by_name[name].objects]
    return {
        "sample_id": f"{name}-{task}", "task": task, "status": schema.PENDING, "_unit": f"0:{name}:{task}", "_unit_rows": 1,
        "_shard": 0, "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "_input": schema.dumps({"key": name, "index": 0}), "source_image": schema.image_value(encode_png(rgb), name),
        "width": rgb.shape[1], "height": rgb.shape[0], "_work": schema.dumps({"objects": objects}),
    }


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
    rgb = decode_png(row["source_image"]["bytes"])
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
        source, target = decode_png(row["source_image"]["bytes"]), decode_png(row["target_image"]["bytes"])
        region = decode_mask(row["mask"]["bytes"])
        assert np.array_equal(target[~region], source[~region])
        assert set(schema.loads(row["scores"])["gates"]) == {"outside_change", "inside_change", "structure_similarity"}


# -- background_change, cpu ----------------------------------------------------------------------


def test_composite_keeps_the_subject_and_replaces_the_rest(cpu_cfg):
    row = sample_row("motorcycle_left.png", BACKGROUND, 320)
    rgb = decode_png(row["source_image"]["bytes"])
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
        source, target = decode_png(row["source_image"]["bytes"]), decode_png(row["target_image"]["bytes"])
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


# -- the model's choice and its fallback, on hand-written answers --------------------------------


def _choice_row(choice=None, objects=None, tags=None):
    state = {"objects": objects, "tags": tags or []}
    if choice is not None:
        state["edit_choice"] = choice
    return {
        "sample_id": "c", "task": REPLACE, "status": schema.PENDING, "_unit": "0:0:r", "source_sha256": "ab",
        "width": 100, "height": 100, "_work": schema.dumps(state),
    }


CUP = [{"label": "cup", "bbox": [20, 20, 40, 40]}]


@pytest.mark.parametrize(
    "choice, by",
    [
        ({"object": "cup", "change_to": "a teapot"}, "mllm"),
        ({"object": "cup", "change_to": "red"}, "table"),  # a colour, not a thing
        ({"object": "cup", "change_to": "a blue cup"}, "table"),  # the same kind of thing
        ({"object": "cup", "change_to": "turn it into {json}"}, "table"),
        ({"object": "face", "change_to": "a mask"}, "table"),  # a label this task never replaces
        (None, "table"),
    ],
)
def test_model_choice_is_used_only_when_it_makes_sense(choice, by):
    stage = ReplaceChoiceStage((REPLACE,), ["face"], 0.02, 0.6, seed=0)
    row = stage.process_row(_choice_row(choice, CUP))
    picked = work(row)["replace_choice"]
    assert picked["by"] == by and work(row)["phrases"] == [picked["object"]]
    fallbacks = provenance(row).get("fallbacks", [])
    if by == "table":
        assert picked["object"] == "cup" and picked["new"] in REPLACEMENTS["cup"]
        assert fallbacks and "replacement table" in fallbacks[0]["what"]
    else:
        assert picked == {"object": "cup", "new": "teapot", "new_zh": "茶壶", "by": "mllm"} and not fallbacks


def test_fallback_uses_tags_without_annotations_and_skips_when_nothing_fits():
    stage = ReplaceChoiceStage((REPLACE,), [], 0.02, 0.6, seed=0)
    row = stage.process_row(_choice_row(None, None, [{"label": "sky", "score": 0.9}, {"label": "dog", "score": 0.4}]))
    assert work(row)["replace_choice"]["object"] == "dog"
    skipped = stage.process_row(_choice_row(None, None, [{"label": "sky", "score": 0.9}]))
    assert skipped["status"] == schema.SKIPPED and "table" in skipped["reason"]
    assert replacement_problem("hot air balloon", "airplane") is None and with_article("apple") == "an apple"


# -- the tiny model path -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("twins"))}}])
    ensure_tiny(cfg, ["florence2", "sam2", "siglip", "qwen2_5_vl", "flux_fill"], log=lambda m: None)
    return cfg


def _flux(stages) -> FluxFillStage:
    return next(s for s in stages if isinstance(s, FluxFillStage))


def _run_tiny(task, cfg, row, monkeypatch, snapshot_before: str = ""):
    """The recipe's rows, the Flux-Fill calls, the Flux stage, and the rows as they were just
    before the stage named `snapshot_before`."""
    stages = build_stages(task, cfg)
    for stage in stages:
        stage.setup()
    calls = record_pipeline_calls(_flux(stages).pipe, monkeypatch)
    rows, before = [row], None
    for stage in stages:
        if stage.name == snapshot_before:
            before = [dict(r) for r in rows]
        rows = run_stage(stage, rows)
    return rows, calls, _flux(stages), before


def test_tiny_replace_falls_back_on_junk_and_prompts_flux_with_the_new_object(tiny_cfg, monkeypatch):
    rows, calls, flux, _ = _run_tiny(REPLACE, tiny_cfg, sample_row("coffee.png", REPLACE, 128), monkeypatch)
    assert len(rows) == 1 and len(calls) == 1
    row = rows[0]
    assert row["status"] in (schema.OK, schema.REJECTED), row.get("reason")
    prov = provenance(row)
    # the random-weight Qwen answered junk twice; the table stood in and the row says so
    assert prov["stages"]["mllm_choose_edit"]["attempts"] == 2
    assert prov["stages"]["replace_choice"]["chosen_by"] == "table"
    assert any(f["stage"] == "replace_choice" and "replacement table" in f["what"] for f in prov["fallbacks"])
    edit = schema.loads(row["edit"])
    assert edit["chosen_by"] == "table" and edit["new_object"] in REPLACEMENTS[edit["object"]]
    assert calls[0]["prompt"] == [with_article(edit["new_object"])]
    given = np.asarray(calls[0]["mask_image"][0]) > 127  # at the generator's working size
    assert np.array_equal(given, resize_mask(dilate(decode_mask(row["mask"]["bytes"]), flux.mask_dilate_px), given.shape))
    assert edit["new_object"] in row["instruction_en"]


def test_tiny_background_gives_flux_the_inverted_subject_mask(tiny_cfg, monkeypatch):
    row = sample_row("motorcycle_left.png", BACKGROUND, 128)
    rows, calls, flux, before = _run_tiny(BACKGROUND, tiny_cfg, row, monkeypatch, snapshot_before="background_propose")
    # SAM-2's masks (junk from random weights) of the subject and its parts, joined
    segmented = before[0]
    assert provenance(segmented)["stages"]["sam2_mask"]["model"].endswith("sam2")
    subject = subject_mask(segmented, mask_methods(segmented))
    assert 0 < subject.mean() < 1
    per_input = tiny_cfg["tasks"][BACKGROUND]["per_input"]
    assert len(rows) == per_input and sum(len(c["prompt"]) for c in calls) == per_input
    prompts = [p for c in calls for p in c["prompt"]]
    masks = [np.asarray(m) > 127 for c in calls for m in c["mask_image"]]
    for row in rows:
        assert row["status"] in (schema.OK, schema.REJECTED), row.get("reason")
        edit = schema.loads(row["edit"])
        assert edit["mask_marks"] == "background" and edit["prompt"] == SCENES[edit["scene"]].prompt
        background = decode_mask(row["mask"]["bytes"])
        assert np.array_equal(background, ~subject)  # the row's mask is the subject's inverse
        given = masks[prompts.index(edit["prompt"])]  # and that is what Flux-Fill was told to redraw
        assert np.array_equal(given, resize_mask(dilate(background, flux.mask_dilate_px), given.shape))
        source, target = decode_png(row["source_image"]["bytes"]), decode_png(row["target_image"]["bytes"])
        kept = ~dilate(background, flux.mask_dilate_px)
        assert np.array_equal(target[kept], source[kept])
