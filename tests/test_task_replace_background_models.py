"""subject_replace and background_change on the model path: the MLLM's choice of what to replace
and its fallback on hand-written answers, and the tiny twins (which model got which
conditioning). The cpu recipes: test_task_replace_background.py."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core import config, schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import provenance, work
from pipeline.engine.stage_runner import run_stage
from stages.candidates import mask_methods
from stages.diffusion_common import dilate, resize_mask
from stages.models.flux_fill import FluxFillStage
from stages.models.tiny import ensure_tiny
from tasks import build_stages
from tasks.background.scenes import SCENES
from tasks.background.subject import subject_mask
from tasks.replace.choice import ReplaceChoiceStage
from tasks.replace.vocabulary import REPLACEMENTS, replacement_problem, with_article
from tests.model_rows import record_pipeline_calls
from tests.sample_rows import sample_row

REPLACE, BACKGROUND = "subject_replace", "background_change"


# -- the model's choice and its fallback, on hand-written answers --------------------------------


def _choice_row(choice=None, objects=None, tags=None):
    state = {"objects": objects, "tags": tags or []}
    if choice is not None:
        state["edit_choice"] = choice
    return {
        "sample_id": "c", "task": REPLACE, "status": schema.PENDING, "_unit": "0:0:r", "source_sha256": "ab",
        "_input": schema.dumps({"key": "cup.png", "index": 0}),
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
        source, target = decode_image(row["source_image"]["bytes"]), decode_image(row["target_image"]["bytes"])
        kept = ~dilate(background, flux.mask_dilate_px)
        assert np.array_equal(target[kept], source[kept])
