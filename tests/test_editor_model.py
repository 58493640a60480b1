"""The bundled editor's parts: codecs, rectified flow, connector, DiT wiring, the MLLM encoder's
prefix drop, checkpoints and resume, and starting from a FLUX-style checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from editor import checkpoint
from editor.codec import PixelCodec, VaeCodec, pack, unpack
from editor.connector import Connector, pad_tokens
from editor.dit import (
    SOURCE_AXIS,
    TARGET_AXIS,
    DiTShape,
    build_dit,
    dit_velocity,
    image_ids,
)
from editor.flow import euler_sample, noisy, sample_timesteps, velocity_target
from editor.model import ConnectorShape, Editor
from editor.train import TrainData, TrainSettings, augment, sample, train
from pipeline.core import models
from stages.models.tiny import build_tiny


def test_pack_unpack_round_trip_and_token_order():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    tokens = pack(x, 2)
    assert tokens.shape == (2, 2 * 3, 12)
    assert torch.equal(unpack(tokens, (2, 3), 2), x)
    # token 1 is the patch at row 0, column 1: channel 0 of its top-left pixel is x[:, 0, 0, 2]
    assert tokens[0, 1, 0] == x[0, 0, 0, 2]


def test_pixel_codec_round_trip_and_bad_size():
    codec = PixelCodec(4)
    images = torch.rand(3, 3, 16, 16)
    tokens = codec.encode(images)
    assert tokens.shape == (3, 16, 48) and tokens.min() >= -1 and tokens.max() <= 1
    assert torch.allclose(codec.decode(tokens, codec.grid(16, 16)), images, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of the patch"):
        codec.grid(18, 16)


def test_vae_codec_scales_packs_and_decodes(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4, sample_size=32,
                        scaling_factor=0.5, shift_factor=0.1)
    vae.save_pretrained(tmp_path / "vae")
    codec = VaeCodec.load(str(tmp_path))  # a pipeline-style folder with vae/
    assert codec.channels == 16 and codec.grid(32, 32) == (8, 8)
    images = torch.rand(2, 3, 32, 32)
    tokens = codec.encode(images)
    raw = vae.encode(images * 2 - 1).latent_dist.mean
    assert torch.allclose(unpack(tokens, (8, 8), 2), (raw - 0.1) * 0.5, atol=1e-5)
    decoded = codec.decode(tokens, (8, 8))
    assert decoded.shape == images.shape and decoded.min() >= 0 and decoded.max() <= 1
    with pytest.raises(ValueError, match="multiple of 4"):
        codec.grid(30, 32)


def test_rectified_flow_path_target_and_timesteps():
    x0, noise, t = torch.full((2, 3, 1), 2.0), torch.zeros(2, 3, 1), torch.tensor([0.25, 1.0])
    assert torch.allclose(noisy(x0, noise, t)[:, 0, 0], torch.tensor([1.5, 0.0]))
    assert torch.equal(velocity_target(x0, noise), noise - x0)
    ts = sample_timesteps(20000, torch.Generator().manual_seed(0))
    assert 0 < ts.min() and ts.max() < 1
    assert abs(float(ts.median()) - 0.5) < 0.02
    # logit-normal puts more weight mid-path than a uniform draw would
    assert float(((ts > 0.25) & (ts < 0.75)).float().mean()) > 0.6


def test_euler_sampler_lands_on_the_point_the_ideal_velocity_points_to():
    x0 = torch.randn(2, 5, 3)
    noise = torch.randn(2, 5, 3)
    # for a single target, the exact rectified-flow velocity at (x, t) is (x - x0) / t
    out = euler_sample(lambda x, t: (x - x0) / t.view(-1, 1, 1), noise, steps=3)
    assert torch.allclose(out, x0, atol=1e-5)
    with pytest.raises(ValueError):
        euler_sample(lambda x, t: x, noise, steps=0)
    # SDEdit: from a point part-way along the path the same exact velocity still lands on x0
    halfway = noisy(x0, noise, torch.full((2,), 0.6))
    assert torch.allclose(euler_sample(lambda x, t: (x - x0) / t.view(-1, 1, 1), halfway, steps=2, t_start=0.6), x0, atol=1e-5)
    with pytest.raises(ValueError, match="starts at"):
        euler_sample(lambda x, t: x, noise, steps=2, t_start=0.0)


def test_connector_ignores_padding():
    torch.manual_seed(0)
    conn = Connector(in_dim=16, width=32, depth=2, heads=4, cond_dim=24, pooled_dim=8).eval()
    short, longer = torch.randn(3, 16), torch.randn(7, 16)
    hidden, mask = pad_tokens([short, longer])
    assert hidden.shape == (2, 7, 16) and mask.sum(1).tolist() == [3, 7]
    tokens, pooled = conn(hidden, mask)
    alone_tokens, alone_pooled = conn(short[None], torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(pooled[0], alone_pooled[0], atol=1e-5)
    assert torch.allclose(tokens[0, :3], alone_tokens[0], atol=1e-5)
    assert torch.all(tokens[0, 3:] == 0) and tokens.shape == (2, 7, 24)


def test_dit_sees_source_tokens_on_their_own_rope_axis():
    ids = image_ids((2, 3), SOURCE_AXIS)
    assert ids.shape == (6, 3) and torch.all(ids[:, 0] == SOURCE_AXIS) and ids[4].tolist() == [SOURCE_AXIS, 1, 1]
    assert torch.all(image_ids((2, 3), TARGET_AXIS)[:, 0] == TARGET_AXIS)
    shape = DiTShape(in_channels=12, double_blocks=1, single_blocks=1, heads=2, head_dim=16, cond_dim=8, pooled_dim=8)
    dit = build_dit(shape)
    args = (torch.randn(2, 6, 12), torch.randn(2, 6, 12), torch.randn(2, 4, 8), torch.randn(2, 8), torch.rand(2), (2, 3))
    # adaLN-Zero: a fresh DiT predicts zero velocity
    assert torch.all(dit_velocity(dit, *args) == 0)
    torch.manual_seed(1)
    for p in dit.parameters():
        torch.nn.init.normal_(p, std=0.2)
    v = dit_velocity(dit, *args)
    assert v.shape == (2, 6, 12)
    moved_source = dit_velocity(dit, args[0], args[1] + 1, *args[2:])
    moved_text = dit_velocity(dit, args[0], args[1], args[2] + 1, *args[3:])
    assert not torch.allclose(v, moved_source) and not torch.allclose(v, moved_text)


def test_rope_split_covers_each_head():
    for head_dim in (16, 32, 64, 128):
        axes = DiTShape(12, head_dim=head_dim).rope_axes()
        assert sum(axes) == head_dim and all(a % 2 == 0 and a > 0 for a in axes)
    assert DiTShape(12, head_dim=128).rope_axes() == (16, 56, 56)  # FLUX.1's own split


@pytest.fixture(scope="module")
def qwen_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    path, _ = build_tiny(root, models.registry()["qwen2_5_vl"])
    return str(path)


def test_encoder_drops_exactly_the_system_prefix(qwen_path):
    from editor.encoder import SYSTEM_PROMPT, MLLMEncoder

    enc = MLLMEncoder(qwen_path)
    tokenizer = enc.processor.tokenizer
    photo = (np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)
    inputs = enc.processor(text=[enc.render("Make it red.")], images=[enc._image(photo)], return_tensors="pt")
    ids = inputs["input_ids"][0]
    prefix = tokenizer.decode(ids[: enc.prefix_tokens])
    assert SYSTEM_PROMPT in prefix and prefix.rstrip().endswith("<|im_end|>")
    assert tokenizer.decode(ids[enc.prefix_tokens :]).startswith("<|im_start|>user")
    full = enc.model.model(**inputs).last_hidden_state[0]
    # batched with a longer instruction (so this row is padded): the same states, prefix removed
    kept = enc.encode([photo, photo], ["Make it red.", "Make the whole photo look like a pencil sketch, please."])
    assert kept[0].shape == (len(ids) - enc.prefix_tokens, enc.width)
    assert torch.allclose(kept[0], full[enc.prefix_tokens :], atol=1e-4)
    assert kept[1].shape[0] > kept[0].shape[0]


def _toy_data(n=6, size=8):
    gen = torch.Generator().manual_seed(0)
    src = torch.rand(n, 3, 2 * size, 2 * size, generator=gen)
    hidden = [torch.randn(3 + i % 2, 16, generator=gen) for i in range(n)]
    return TrainData(src, (1 - src), hidden, size)


def _toy_editor():
    torch.manual_seed(0)
    return Editor(ConnectorShape(16, 32, 1, 2), DiTShape(12, 1, 1, 2, 16, 16, 16))


def test_augment_crops_source_and_target_alike():
    data = _toy_data()
    src, tgt = augment(data.source, data.target, 8, torch.Generator().manual_seed(3), 0.5)
    assert src.shape == (6, 3, 8, 8)
    assert torch.allclose(tgt, 1 - src, atol=1e-5)  # the same crop, mirror and turn on both


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    data, codec = _toy_data(), PixelCodec(2)
    settings = TrainSettings(steps=6, batch_size=3, lr=1e-3, warmup=2, checkpoint_every=3)
    straight = _toy_editor()
    history = train(straight, codec, data, settings, tmp_path / "a", log=lambda m: None)
    assert [s for s, _ in history] == list(range(1, 7))

    half = _toy_editor()
    train(half, codec, data, TrainSettings(**{**settings.__dict__, "steps": 3}), tmp_path / "b", log=lambda m: None)
    # the 3-step run was written under other settings: a 6-step run starts over rather than mixing
    messages = []
    train(_toy_editor(), codec, data, settings, tmp_path / "b", log=messages.append)
    assert any("ignoring" in m for m in messages)

    # a run stopped after its third step (checkpoint_every=3) and started again
    stopped = _toy_editor()
    with pytest.raises(KeyboardInterrupt):
        train(stopped, codec, data, settings, tmp_path / "c", log=_interrupt_after(3))
    resumed, messages = _toy_editor(), []
    resumed_history = train(resumed, codec, data, settings, tmp_path / "c", log=messages.append)
    assert any("resumed" in m and "step 3" in m for m in messages)
    assert resumed_history == history
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    saved = checkpoint.read_meta(tmp_path / "c" / checkpoint.LATEST)
    assert saved["step"] == 6 and saved["shapes"] == straight.shapes()
    assert (tmp_path / "c" / checkpoint.LATEST).read_bytes()[:8] != b"PK\x03\x04"  # safetensors, not a pickle zip


def _interrupt_after(step):
    def log(message):
        if message.startswith(f"step {step}/"):
            raise KeyboardInterrupt
    return log


def test_dit_starts_from_a_flux_style_checkpoint(tmp_path):
    source = build_dit(DiTShape(12, 1, 1, 2, 16, 16, 16))
    torch.manual_seed(5)
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.05)
    source.save_pretrained(tmp_path / "flux" / "transformer")  # the layout of a FLUX pipeline folder
    editor = Editor(ConnectorShape(16, 32, 1, 2), dit_init=str(tmp_path / "flux"))
    assert editor.dit_shape.in_channels == 12 and editor.dit_shape.cond_dim == 16
    for (name, a), b in zip(source.state_dict().items(), editor.dit.state_dict().values()):
        assert torch.equal(a, b), name
    assert list((tmp_path / "flux" / "transformer").glob("*.safetensors"))


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_checkpoint(tmp_path):
    data, codec = _toy_data(), PixelCodec(2)
    train(_toy_editor(), codec, data, TrainSettings(steps=2, batch_size=3, checkpoint_every=1), tmp_path, log=lambda m: None)
    poisoned = TrainData(data.source * float("nan"), data.target, data.hidden, data.size)
    with pytest.raises(FloatingPointError, match="loss is nan at step 1"):
        train(_toy_editor(), codec, poisoned, TrainSettings(steps=5, batch_size=3), tmp_path, log=lambda m: None)
    assert checkpoint.read_meta(tmp_path / checkpoint.LATEST)["step"] == 2  # the earlier run's checkpoint is intact


def test_instruction_dropout_trains_on_the_empty_instruction_reading():
    data, codec = _toy_data(), PixelCodec(2)
    gen = torch.Generator().manual_seed(1)
    null = [torch.randn(2, 16, generator=gen) for _ in range(6)]
    quiet = {"log": lambda m: None}
    with pytest.raises(ValueError, match="null_hidden"):
        train(_toy_editor(), codec, data, TrainSettings(steps=1, drop_instruction=0.5), **quiet)
    settings = TrainSettings(steps=8, batch_size=3)  # a few steps: adaLN-Zero hides the conditioning at first
    plain = train(_toy_editor(), codec, data, settings, **quiet)
    with_null = TrainData(data.source, data.target, data.hidden, data.size, null)
    assert train(_toy_editor(), codec, with_null, settings, **quiet) == plain  # no dropout: the null rows are never read
    # every row dropped trains exactly as data whose instructions are all empty
    dropped = train(_toy_editor(), codec, with_null, TrainSettings(steps=8, batch_size=3, drop_instruction=1.0), **quiet)
    assert dropped == train(_toy_editor(), codec, TrainData(data.source, data.target, null, data.size), settings, **quiet)
    assert dropped != plain


def test_guidance_extrapolates_from_the_empty_instruction_velocity():
    data, codec = _toy_data(), PixelCodec(2)
    editor = _toy_editor()
    torch.manual_seed(2)
    for p in editor.parameters():  # a fresh DiT's adaLN-Zero output is 0 whatever the conditioning
        torch.nn.init.normal_(p, std=0.05)
    gen = torch.Generator().manual_seed(1)
    null = [torch.randn(2, 16, generator=gen) for _ in range(6)]
    src, grid = codec.encode(data.source[:, :, :8, :8]), codec.grid(8, 8)

    def edit(hidden, **kw):
        return sample(editor, src, hidden, grid, 1, **kw)

    with pytest.raises(ValueError, match="null_hidden"):
        edit(data.hidden, guidance=2.0)
    conditional, unconditional = edit(data.hidden), edit(null)
    assert not torch.allclose(conditional, unconditional)
    assert torch.allclose(edit(data.hidden, guidance=0.0, null_hidden=null), unconditional, atol=1e-5)
    # one Euler step is linear in the velocity: scale 3 lands three times as far from the unconditional edit
    assert torch.allclose(edit(data.hidden, guidance=3.0, null_hidden=null), unconditional + 3 * (conditional - unconditional), atol=1e-4)
