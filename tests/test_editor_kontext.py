"""FLUX.1 Kontext as verify's baseline editor: a tiny random-weight twin through the production
loader. Its pixels are noise, so the tests check what the wrapper controls: sizes, order,
batching, seeds, and that the instruction and the source both reach the model."""

from __future__ import annotations

import numpy as np
import pytest

from editor.kontext import kontext_edit, load_kontext
from stages.models.tiny import flux_kontext as tiny_flux_kontext

INSTRUCTIONS = ["make the car red", "remove the dog", "add a bird on the branch"]
SIZE = 48  # a multiple of 16 that is none of Kontext's preferred resolutions


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = tiny_flux_kontext.build(tmp_path_factory.mktemp("flux_kontext"))
    return load_kontext(str(folder), device="cpu")


@pytest.fixture(scope="module")
def sources():
    rng = np.random.default_rng(0)
    # different shapes and aspect ratios: with generate_px each is squared to SIZE
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(40, 72, 3), (64, 64, 3), (90, 30, 3)]]


def _edit(pipe, sources, instructions=INSTRUCTIONS, **kw):
    # the twin generates small; the real model's default (Kontext's ~1 MP resolutions) is below
    args = dict(size=SIZE, steps=2, batch_size=2, generate_px=SIZE)
    args.update(kw)
    return kontext_edit(pipe, sources, list(instructions), **args)


@pytest.fixture(scope="module")
def edited(pipe, sources):
    return _edit(pipe, sources)


def test_loads_the_kontext_classes_in_float32_on_the_cpu(pipe):
    import torch
    from diffusers import FluxKontextPipeline, FluxTransformer2DModel

    assert isinstance(pipe, FluxKontextPipeline) and isinstance(pipe.transformer, FluxTransformer2DModel)
    assert pipe.dtype == torch.float32 and pipe.device.type == "cpu"
    # the context image joins along the sequence: the transformer takes the plain packed latent width
    assert pipe.transformer.config.in_channels == pipe.vae.config.latent_channels * 4


def test_one_square_uint8_picture_per_source_at_exactly_the_size(edited, sources):
    assert len(edited) == len(sources)
    for image in edited:
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


def test_the_same_seed_gives_the_same_pictures(pipe, sources, edited):
    again = _edit(pipe, sources)
    assert all(np.array_equal(a, b) for a, b in zip(edited, again))


def test_order_survives_batching(pipe, sources, edited):
    # one generator per call draws the noise in input order, whatever the batch size
    one_by_one = _edit(pipe, sources, batch_size=1)
    # batched kernels may round differently from single ones: a level or two of 255, no more
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(edited, one_by_one)]
    assert all(d.max() <= 2 and d.mean() < 0.1 for d in diffs), [(d.max(), d.mean()) for d in diffs]


def test_another_seed_gives_other_pictures(pipe, sources, edited):
    other = _edit(pipe, sources, seed=1)
    assert not np.array_equal(edited[0], other[0])


def test_the_instruction_and_the_source_reach_the_model(pipe, sources, edited):
    reworded = _edit(pipe, sources[:1], ["make the car blue"])
    assert not np.array_equal(edited[0], reworded[0])
    other_source = _edit(pipe, [sources[1]], INSTRUCTIONS[:1])
    assert not np.array_equal(edited[0], other_source[0])


@pytest.mark.parametrize("size", [40, 50, 0])
def test_a_size_off_the_latent_grid_is_refused_before_any_work(pipe, sources, size):
    with pytest.raises(ValueError, match="multiple of 16"):
        kontext_edit(pipe, sources, INSTRUCTIONS, size)


def test_a_missing_instruction_is_refused(pipe, sources):
    with pytest.raises(ValueError, match="3 sources but 2 instructions"):
        kontext_edit(pipe, sources, INSTRUCTIONS[:2], SIZE)


class _RecordingPipe:
    """Stands in for FluxKontextPipeline: records each call's sizes, answers grey pictures."""

    vae_scale_factor = 8

    def __init__(self):
        self.calls = []

    def __call__(self, image, prompt, height, width, max_area, _auto_resize, generator, output_type, **_):
        self.calls.append({"n": len(image), "context": [im.size for im in image], "hw": (height, width),
                           "max_area": max_area, "auto_resize": _auto_resize})
        return type("Out", (), {"images": np.full((len(image), height, width, 3), 0.5, np.float32)})()


def test_by_default_kontext_generates_at_its_preferred_resolution_and_resizes_for_scoring():
    """Kontext was trained near 1 MP on diffusers' PREFERRED_KONTEXT_RESOLUTIONS; generating at the
    scoring size (32 or 256 px) would run it far off its training distribution."""
    fake = _RecordingPipe()
    shapes = [(300, 300, 3), (400, 600, 3), (600, 400, 3), (310, 300, 3)]
    sources = [np.zeros(s, np.uint8) for s in shapes]
    out = kontext_edit(fake, sources, ["edit"] * 4, 256, batch_size=4)
    assert [o.shape for o in out] == [(256, 256, 3)] * 4
    # one batch per resolution, nearest aspect ratio, in order of first appearance
    assert [c["hw"] for c in fake.calls] == [(1024, 1024), (832, 1248), (1248, 832)]
    assert [c["n"] for c in fake.calls] == [2, 1, 1]
    for call in fake.calls:
        height, width = call["hw"]
        assert call["max_area"] == height * width and 0.9e6 < height * width <= 1024**2
        assert all(size == (width, height) for size in call["context"]) and call["auto_resize"] is False


def test_the_gpu_profile_keeps_kontexts_resolution_and_the_tiny_one_generates_small():
    from pipeline.core import config

    assert config.load_config("gpu")["editor"]["kontext"]["generate_px"] is None
    assert config.load_config("tiny")["editor"]["kontext"]["generate_px"] == 32
