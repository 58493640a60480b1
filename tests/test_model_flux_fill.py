"""Flux-Fill adapter: a tiny random-weight twin through the production loader. Its pixels are noise,
so the tests check what the adapter controls: sizes, the paste-back, seeds, batching, prompts."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import provenance
from pipeline.engine.stage_runner import run_stage
from stages.diffusion_common import dilate, paste_inside, row_seed, working_size
from stages.models.flux_fill import FluxFillStage
from stages.models.tiny import flux_fill as tiny_flux_fill
from tests.model_rows import gradient_photo as _photo
from tests.model_rows import pipeline_row, record_pipeline_calls, through_arrow
from tests.model_rows import run_through_arrow as _run

TASKS = ("subject_remove", "subject_replace")


def _box_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4 : height // 2, width // 3 : 2 * width // 3] = 255
    return mask


def _row(index: int, rgb: np.ndarray, mask: np.ndarray, prompt: str, task: str = "subject_replace", key: str | None = None) -> dict:
    sample_id = schema.sample_id("sha", key or f"img{index}.png", task, -1)
    return pipeline_row(rgb, index, task, sample_id=sample_id, mask=mask, edit={"prompt": prompt, "object": "thing"})


def _stage(folder, **overrides) -> FluxFillStage:
    args = dict(tasks=TASKS, steps=2, resolution=64, max_sequence_length=32, mask_dilate_px=2, feather_px=2)
    args.update(overrides)
    stage = FluxFillStage(str(folder), **args)
    stage.setup()
    return stage


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_flux_fill.build(tmp_path_factory.mktemp("flux_fill"))


@pytest.fixture(scope="module")
def stage(folder):
    return _stage(folder)


@pytest.fixture()
def spy(stage, monkeypatch):
    """Records the keyword arguments of every pipeline call and lets it run."""
    return record_pipeline_calls(stage.pipe, monkeypatch)


def test_working_size_keeps_area_aspect_and_multiple():
    assert working_size(64, 64, 64, 16) == (64, 64)
    assert working_size(48, 80, 64, 16) == (48, 80)
    h, w = working_size(768, 1024, 1024, 16)
    assert h % 16 == 0 and w % 16 == 0 and abs(h * w - 1024**2) / 1024**2 < 0.05 and w > h


def test_paste_inside_is_exact_outside_and_generated_in_the_core():
    source = np.full((20, 20, 3), 10, np.uint8)
    generated = np.full((20, 20, 3), 250, np.uint8)
    region = np.zeros((20, 20), bool)
    region[4:16, 4:16] = True
    out = paste_inside(source, generated, region, feather_px=2)
    assert (out[~region] == 10).all()
    assert (out[8:12, 8:12] == 250).all()
    assert 10 < out[4, 10, 0] < 250  # the soft edge lies inside the region


def test_row_seed_is_stable_and_depends_on_both_inputs():
    assert row_seed("abc", 0) == row_seed("abc", 0)
    assert len({row_seed("abc", 0), row_seed("abd", 0), row_seed("abc", 1)}) == 3
    assert 0 <= row_seed("abc", 0) < 2**63


def test_gpu_profile_gives_it_a_whole_gpu():
    from pipeline.core.config import load_config

    stage = FluxFillStage.from_config(load_config("gpu"), TASKS)  # sizes it; loads nothing
    assert stage.uses_model and stage.resources.num_gpus == 1 and stage.loads == ("flux_fill",)


def test_inpaints_inside_the_mask_only_at_source_size(stage):
    rows = [
        _row(0, _photo(64, 64), _box_mask(64, 64), "a red ball"),
        _row(1, _photo(48, 80), _box_mask(48, 80), "a green cup"),
    ]
    out = _run(stage, rows)
    for row in rows:
        done = out[row["sample_id"]]
        assert done["status"] == schema.PENDING, done.get("reason")
        source = decode_image(row["source_image"]["bytes"])
        target = decode_image(done["target_image"]["bytes"])
        assert target.shape == source.shape
        region = dilate(decode_mask(row["mask"]["bytes"]), stage.mask_dilate_px)
        assert np.array_equal(target[~region], source[~region])
        assert not np.array_equal(target[region], source[region])
        record = provenance(done)["stages"]["flux_fill"]
        assert record["seed"] == row_seed(row["sample_id"], stage.base_seed)
        assert record["model"] == stage.model_ref and record["steps"] == 2


def test_same_row_and_seed_repeat_and_other_seeds_differ(stage, folder):
    rgb, mask = _photo(64, 64), _box_mask(64, 64)
    rows = [_row(0, rgb, mask, "a red ball", key="a.png"), _row(1, rgb, mask, "a red ball", key="b.png")]
    first, again = _run(stage, rows), _run(stage, rows)
    target = {sid: r["target_image"]["bytes"] for sid, r in first.items()}
    assert target == {sid: r["target_image"]["bytes"] for sid, r in again.items()}
    # same picture and prompt, another sample_id: other noise
    assert target[rows[0]["sample_id"]] != target[rows[1]["sample_id"]]
    reseeded = _run(_stage(folder, base_seed=7), rows[:1])
    assert reseeded[rows[0]["sample_id"]]["target_image"]["bytes"] != target[rows[0]["sample_id"]]


def test_rows_of_one_size_share_a_call_with_their_own_prompts_and_masks(stage, spy):
    rows = [
        _row(0, _photo(64, 64), _box_mask(64, 64), "a red ball"),
        _row(1, _photo(48, 80), _box_mask(48, 80), "a green cup"),
        _row(2, _photo(64, 64), 255 - _box_mask(64, 64), "a blue sky"),
        _row(3, _photo(64, 64), _box_mask(64, 64), "ignored", task="tone_transformation"),
    ]
    run_stage(stage, through_arrow(rows))
    wide = working_size(48, 80, stage.resolution, stage.multiple)
    assert sorted((c["height"], c["width"], len(c["prompt"])) for c in spy) == [(*wide, 1), (64, 64, 2)]
    square = next(c for c in spy if c["height"] == 64)
    assert square["prompt"] == ["a red ball", "a blue sky"]
    assert len(square["generator"]) == 2
    for mask_image, row in zip(square["mask_image"], (rows[0], rows[2])):
        expected = dilate(decode_mask(row["mask"]["bytes"]), stage.mask_dilate_px)
        assert np.array_equal(np.asarray(mask_image) > 127, expected)


def test_a_bad_row_fails_alone(stage):
    good = _row(0, _photo(64, 64), _box_mask(64, 64), "a red ball")
    empty = _row(1, _photo(64, 64), np.zeros((64, 64), np.uint8), "a red ball")
    out = _run(stage, [good, empty])
    assert out[good["sample_id"]]["status"] == schema.PENDING
    assert out[good["sample_id"]]["target_image"] is not None
    assert out[empty["sample_id"]]["status"] == schema.ERROR
    assert "mask is empty" in out[empty["sample_id"]]["reason"]
