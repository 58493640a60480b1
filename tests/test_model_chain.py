"""The seed's model chain through the real runner on local Ray, with the tiny twins:
samples -> Florence-2 grounding -> SAM-2 masks -> ZoeDepth -> Flux-Fill."""

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core import config, models
from pipeline.postrun.finish import run_pipeline
from stages.diffusion_common import dilate
from stages.models.factory import make_stage
from stages.models.sd3_controlnet import SD3ControlNetStage
from tasks import build_stages


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    return config.load_config(
        "tiny",
        overrides=[{"run": {"out": str(root / "run"), "progress": False, "limit": 2, "shard_size": 1}, "models": {"tiny_dir": str(root / "twins")}}],
    )


def test_chain_runs_every_model_and_rows_carry_their_fields(ray_address, tiny_cfg):
    stages = build_stages("color_alteration", tiny_cfg)
    names = [s.name for s in stages]
    assert names.index("florence2_grounding") < names.index("sam2_mask") < names.index("zoedepth") < names.index("sd3_controlnet")
    # the chain of issue 3 ends in Flux-Fill: swap the generator, keep everything else
    fill = make_stage("flux_fill", tiny_cfg, ("color_alteration",))
    chain = [fill if isinstance(s, SD3ControlNetStage) else s for s in stages]
    result = run_pipeline(tiny_cfg, log=lambda m: None, task_stages=chain)
    rows = [r for p in sorted((result.run_dir / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert rows and result.manifest["complete"]
    for row in rows:
        edit = json.loads(row["edit"])
        assert len(edit["box_xywh"]) == 4 and edit["prompt"].startswith("a ")
        source = np.asarray(Image.open(io.BytesIO(row["source_image"]["bytes"])))
        mask = np.asarray(Image.open(io.BytesIO(row["mask"]["bytes"])))
        depth = Image.open(io.BytesIO(row["depth"]["bytes"]))
        target = np.asarray(Image.open(io.BytesIO(row["target_image"]["bytes"])).convert("RGB"))
        assert mask.shape == source.shape[:2] == target.shape[:2] and depth.mode.startswith("I")
        outside = ~dilate(mask > 127, fill.mask_dilate_px)
        assert np.array_equal(target[outside], source[outside][..., :3])  # Flux-Fill pasted inside the (dilated) mask only
        stages_run = json.loads(row["provenance"])["stages"]
        twins = Path(tiny_cfg["models"]["tiny_dir"])
        for stage, family in [("florence2_grounding", "florence2"), ("sam2_mask", "sam2"), ("zoedepth", "zoedepth"), ("flux_fill", "flux_fill")]:
            assert stages_run[stage]["model"] == str(twins / family), stage
            assert "revision" in stages_run[stage]
        # random weights find nothing: the annotations stood in, and the row says so
        assert any(f["stage"] == "florence2_grounding" for f in json.loads(row["provenance"])["fallbacks"])


def test_tiny_profile_colour_recipe_runs_the_depth_controlnet(ray_address, tiny_cfg, tmp_path):
    cfg = config.load_config("tiny", overrides=[{"run": {"out": str(tmp_path / "run"), "progress": False, "limit": 1}, "models": {"tiny_dir": tiny_cfg["models"]["tiny_dir"]}}])
    result = run_pipeline(cfg, log=lambda m: None)
    rows = [r for p in sorted((result.run_dir / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert rows, result.manifest
    prov = json.loads(rows[0]["provenance"])["stages"]["sd3_controlnet"]
    assert prov["control"] == "depth" and prov["controlnet"].endswith("controlnet-depth") and prov["prompt"].startswith("a ")
    assert models.tiny_path(Path(cfg["models"]["tiny_dir"]), models.registry()["sd3_5"]).exists()
