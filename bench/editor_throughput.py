"""Training and sampling throughput of the bundled editor at a profile's shapes: what a `verify`
run costs per step, and so how long a real run takes at that size.

The MLLM is not in the loop (its hidden states are computed once per row before training), so
random hidden states of the encoder's width stand in. The VAE is a randomly initialised
AutoencoderKL with FLUX.1's shape (16 latent channels, 8x down, scale and shift factors), built
here: throughput does not depend on the weights.

    python -m bench.editor_throughput --profile tiny                   # the CPU defaults
    python -m bench.editor_throughput --profile gpu --device cuda      # the gpu profile's shapes
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from editor.bundled import new_editor, settings_of
from editor.codec import PixelCodec, VaeCodec
from editor.train import TrainData, sample, train
from pipeline.core import config

QWEN_WIDTH = {"tiny": 64, "gpu": 3584}  # the tiny twin's hidden size; Qwen2.5-VL-7B's


def flux_like_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
        scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
    )


def measure(profile: str, device: str, steps: int, rows: int, text_tokens: int, overrides: list[str] = ()) -> dict:
    cfg = config.load_config(profile, overrides=[config.parse_set(item) for item in overrides])
    ecfg = cfg["editor"]
    size = int(ecfg["size"])
    settings = settings_of(ecfg)
    settings = type(settings)(**{**settings.__dict__, "steps": steps, "warmup": 1, "checkpoint_every": 10**9})
    if ecfg["codec"] == "vae":
        codec = VaeCodec(flux_like_vae().to(device), int(ecfg["patch"]))
    else:
        codec = PixelCodec(int(ecfg["patch"]))
    width = QWEN_WIDTH.get(profile, 64)
    gen = torch.Generator().manual_seed(0)
    data = TrainData(torch.rand(rows, 3, 2 * size, 2 * size, generator=gen), torch.rand(rows, 3, 2 * size, 2 * size, generator=gen),
                     [torch.randn(text_tokens, width, generator=gen) for _ in range(rows)], size)
    editor = new_editor(ecfg, codec, width, 0)
    params = sum(p.numel() for p in editor.parameters())
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as verify trains on a GPU
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    began = time.perf_counter()
    train(editor, codec, data, settings, None, log=lambda m: None, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - began
    grid = codec.grid(size, size)
    held = codec.encode(data.source[:16, :, :size, :size].to(device))
    began = time.perf_counter()
    sample(editor, held, data.hidden[:16], grid, int(ecfg["sample_steps"]), device=device, start_t=float(ecfg["sample_start_t"]))
    if device == "cuda":
        torch.cuda.synchronize()
    sample_s = time.perf_counter() - began
    return {
        "profile": profile, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "size": size,
        "codec": ecfg["codec"], "tokens_per_image": grid[0] * grid[1], "params_m": round(params / 1e6, 1),
        "batch_size": settings.batch_size, "steps": steps, "train_s": round(train_s, 2),
        "steps_per_s": round(steps / train_s, 2), "images_per_s": round(steps * settings.batch_size / train_s, 1),
        "sample_images_per_s": round(16 / sample_s, 1), "sample_steps": int(ecfg["sample_steps"]),
        "peak_gpu_gb": round(torch.cuda.max_memory_allocated() / 1e9, 2) if device == "cuda" else None,
        "hours_for_configured_steps": round(int(ecfg["train"]["steps"]) * train_s / steps / 3600, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--text-tokens", type=int, default=300)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. editor.train.batch_size=16")
    parser.add_argument("--out", default="bench/results/editor_throughput.jsonl")
    args = parser.parse_args()
    result = measure(args.profile, args.device, args.steps, args.rows, args.text_tokens, args.set)
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:{width}}  {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as handle:
        handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
