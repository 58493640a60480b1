"""Every model stage's tiny twin end to end in bfloat16 on the CPU, the precision the gpu profile
runs in: the twins are saved in float32, so a loader that does not cast on load leaves a model
(or one component of a pipeline) in float32 beside bfloat16 neighbours, which only fails here.
Also checks that every weight really is bfloat16, not just that nothing raised."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.cli.model_check import smoke_row
from pipeline.core import config, schema
from pipeline.core.image_io import decode_image
from pipeline.core.rows import provenance
from pipeline.engine.gpu_plan import model_stage_classes
from pipeline.engine.stage_runner import run_stage
from stages.models.tiny import ensure_tiny
from stages.models.torch_device import DTYPE_ENV

SIZE = 64


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    # a few generated tokens are enough to cross every layer in bfloat16
    short = {"florence2": {"max_new_tokens": 4}, "qwen2_5_vl": {"max_new_tokens": 2}}
    cfg = config.load_config("tiny", overrides=[{"models": {"tiny_dir": str(tmp_path_factory.mktemp("tiny"))}, "model_stages": short}])
    ensure_tiny(cfg, ["flux_kontext", *{f for cls in model_stage_classes().values() for f in cls.model.loads}], log=lambda _: None)
    return cfg


@pytest.fixture(autouse=True)
def bfloat16(monkeypatch):
    monkeypatch.setenv(DTYPE_ENV, "bfloat16")


def loaded_modules(value, depth=0) -> list[torch.nn.Module]:
    """The torch modules a loaded stage holds: directly, in a diffusers pipeline, in a
    (model, processor, device, dtype) tuple, or behind a wrapper or bound `generate`."""
    if isinstance(value, torch.nn.Module):
        return [value]
    if depth > 2 or value is None or isinstance(value, (str, bytes, int, float, np.ndarray, torch.Tensor)):
        return []
    if hasattr(value, "components") and isinstance(value.components, dict):
        return [m for m in value.components.values() if isinstance(m, torch.nn.Module)]
    if isinstance(value, tuple):
        return [m for item in value for m in loaded_modules(item, depth + 1)]
    if hasattr(value, "__self__"):  # a bound method, e.g. the Qwen stage's generate
        return loaded_modules(value.__self__, depth + 1)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return [m for item in vars(value).values() for m in loaded_modules(item, depth + 1)]
    return []


def float_dtypes(modules: list[torch.nn.Module]) -> set[torch.dtype]:
    return {p.dtype for m in modules for p in m.parameters() if p.is_floating_point()}


@pytest.mark.parametrize("family", sorted(model_stage_classes()))
def test_each_model_stage_runs_its_twin_in_bfloat16(cfg, family):
    stage = model_stage_classes()[family].from_config(cfg, None)
    stage.setup()
    modules = loaded_modules(stage)
    assert modules, f"{family}: found no loaded torch module to check"
    assert float_dtypes(modules) == {torch.bfloat16}, family
    out = run_stage(stage, [smoke_row(SIZE)])
    errors = [r["reason"] for r in out if r["status"] == schema.ERROR]
    assert not errors, errors
    recorded = [e["dtype"] for row in out for e in provenance(row)["stages"].values() if "dtype" in e]
    assert recorded and set(recorded) == {"bfloat16"}, recorded


def test_flux_kontext_runs_its_twin_in_bfloat16(cfg):
    from editor.kontext import kontext_edit, load_kontext
    from pipeline.core import models

    ref, revision = models.resolve(cfg, "flux_kontext")
    pipe = load_kontext(ref, revision)
    assert float_dtypes(loaded_modules(pipe)) == {torch.bfloat16}
    source = decode_image(smoke_row(SIZE)["source_image"]["bytes"])
    [out] = kontext_edit(pipe, [source], ["make it blue"], 32, steps=2, generate_px=32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
