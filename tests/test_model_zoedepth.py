"""ZoeDepth adapter: a tiny random-weight twin through the production loader, and the 16-bit depth
storage checked on hand-written depth maps (random weights predict a constant depth)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.core import schema
from pipeline.core.rows import blob, provenance, work
from stages.models.tiny import zoedepth as tiny_zoedepth
from stages.models.zoedepth import (
    DEPTH_BLOB,
    ZoeDepthStage,
    decode_depth_png16,
    encode_depth_png16,
    read_depth,
    store_depth,
)
from tests.model_rows import gradient_photo, pipeline_row, run_through_arrow


def _photo(height: int, width: int) -> np.ndarray:
    rgb = gradient_photo(height, width)
    rgb[height // 4 : height // 2, width // 4 : width // 2] = (200, 30, 30)
    return rgb


def _row(index: int, rgb: np.ndarray, task: str) -> dict:
    return pipeline_row(rgb, index, task, sample_id=schema.sample_id(f"sha{index}", f"img{index}.png", task, -1))


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    folder = tiny_zoedepth.build(tmp_path_factory.mktemp("zoedepth"))
    zoe = ZoeDepthStage(str(folder), tasks=("material_modification",))
    zoe.setup()
    return zoe


def test_png16_keeps_metric_depth_to_one_unit():
    yy, xx = np.mgrid[0:40, 0:60]
    depth = (0.4 + 0.2 * xx + 0.05 * yy).astype(np.float32)  # 0.4 m to 14.15 m
    png, metres_per_unit = encode_depth_png16(depth)
    assert metres_per_unit == pytest.approx(depth.max() / 65535)
    decoded = decode_depth_png16(png, metres_per_unit)
    assert decoded.shape == depth.shape and decoded.dtype == np.float32
    assert np.abs(decoded - depth).max() <= metres_per_unit * 0.51
    assert decoded.max() == pytest.approx(depth.max(), rel=1e-6)


def test_png16_survives_flat_and_invalid_depth():
    depth = np.zeros((8, 8), np.float32)
    depth[0, 0] = np.nan
    png, metres_per_unit = encode_depth_png16(depth)
    assert metres_per_unit == 1.0
    assert not decode_depth_png16(png, metres_per_unit).any()


def test_read_depth_uses_the_stored_scale():
    row = {"sample_id": "x"}
    assert read_depth(row) is None
    depth = np.linspace(1.0, 70.0, 12, dtype=np.float32).reshape(3, 4)
    scale = store_depth(row, depth)
    assert work(row)["depth_metres_per_unit"] == scale
    assert np.allclose(read_depth(row), depth, atol=scale)


def test_gpu_profile_gives_it_a_fraction_of_a_gpu():
    from pipeline.core.config import load_config

    stage = ZoeDepthStage.from_config(load_config("gpu"), ("material_modification",))  # sizes it; loads nothing
    assert stage.uses_model and 0 < stage.resources.num_gpus < 1


def test_stage_writes_depth_at_source_size_for_its_tasks_only(stage):
    images = [_photo(64, 64), _photo(48, 80), _photo(64, 64)]
    rows = [_row(0, images[0], "material_modification"), _row(1, images[1], "material_modification"), _row(2, images[2], "subject_add")]
    out = run_through_arrow(stage, rows)

    expected = stage.estimate(images[:2])
    for row, rgb, model_depth in zip(rows[:2], images[:2], expected):
        done = out[row["sample_id"]]
        assert done["status"] == schema.PENDING
        depth = read_depth(done)
        assert depth.shape == rgb.shape[:2]
        scale = provenance(done)["stages"]["zoedepth"]["metres_per_unit"]
        assert scale == work(done)["depth_metres_per_unit"]
        # what is stored is the model's depth, to within one 16-bit step
        assert np.abs(depth - model_depth).max() <= scale * 0.51
        stages = provenance(done)["stages"]["zoedepth"]
        assert stages["model"] == stage.model_ref and stages["dtype"] == str(stage.dtype).removeprefix("torch.")

    other = out[rows[2]["sample_id"]]
    assert blob(other, DEPTH_BLOB) is None
    assert "zoedepth" not in provenance(other).get("stages", {})
