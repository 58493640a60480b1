"""Each seed model at full size with random weights, built on the GPU in bf16, one at a time;
one batch timed per stage. Results are appended to a JSON-lines file as each model finishes, so
a run cut short keeps what it measured.

    python bench/gpu_full_size.py --out bench/results/gpu_full_size.jsonl      # on a GPU
    python bench/gpu_full_size.py --device meta                                  # CPU: shapes and sizes only

What is timed is each stage's dominant network on one batch: generation for the language models
(a fixed number of new tokens, since random weights never stop), one forward for the encoders,
and one denoising step for the diffusion transformers (images per second = batch / (step x steps)).
Text encoders of the diffusion models (T5-XXL, CLIP) run once per prompt and are not timed."""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import torch


def _florence2():
    from transformers import (
        BartConfig,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2VisionConfig,
    )

    vision = Florence2VisionConfig(embed_dim=[256, 512, 1024, 2048], depths=[1, 1, 9, 1], num_heads=[8, 16, 32, 64], num_groups=[8, 16, 32, 64], projection_dim=1024)
    text = BartConfig(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_ffn_dim=4096, decoder_ffn_dim=4096, encoder_attention_heads=16, decoder_attention_heads=16, vocab_size=51290)  # 51289 text tokens + <image>
    model = Florence2ForConditionalGeneration(Florence2Config(vision_config=vision, text_config=text))

    def run(batch):
        pixels = torch.randn(batch, 3, 768, 768)
        # 577 image placeholders: (768 / 32)^2 patches plus one pooled token, then the task prompt
        image = torch.full((batch, 577), model.config.image_token_id)
        ids = torch.cat([image, torch.randint(3, 1000, (batch, 12))], dim=1)
        return model.generate(input_ids=ids, pixel_values=pixels.to(model.dtype), max_new_tokens=64, min_new_tokens=64, num_beams=1, do_sample=False)

    return model, run, 8, "generate 64 tokens at 768 px"


def _sam2():
    from transformers import Sam2Config, Sam2HieraDetConfig, Sam2Model, Sam2VisionConfig

    backbone = Sam2HieraDetConfig(
        hidden_size=144, num_attention_heads=2, blocks_per_stage=[2, 6, 36, 4], embed_dim_per_stage=[144, 288, 576, 1152],
        num_attention_heads_per_stage=[2, 4, 8, 16], window_size_per_stage=[8, 4, 16, 8], global_attention_blocks=[23, 33, 43],
    )
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=[1152, 576, 288, 144])
    model = Sam2Model(Sam2Config(vision_config=vision))

    def run(batch):
        pixels = torch.randn(batch, 3, 1024, 1024, dtype=model.dtype)
        boxes = torch.tensor([[[100.0, 100.0, 600.0, 700.0]]]).repeat(batch, 1, 1)
        return model(pixel_values=pixels, input_boxes=boxes, multimask_output=False)  # as stages/models/sam2.py asks

    return model, run, 8, "image encoder + one box per image at 1024 px"


def _siglip():
    from transformers import (
        SiglipConfig,
        SiglipModel,
        SiglipTextConfig,
        SiglipVisionConfig,
    )

    dims = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16)
    model = SiglipModel(SiglipConfig(text_config=SiglipTextConfig(vocab_size=256000, max_position_embeddings=64, **dims).to_dict(), vision_config=SiglipVisionConfig(image_size=384, patch_size=14, **dims).to_dict()))

    def run(batch):
        return model.get_image_features(pixel_values=torch.randn(batch, 3, 384, 384, dtype=model.dtype))

    return model, run, 16, "image embeddings at 384 px (tag text embeddings are cached)"


def _qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4, vocab_size=152064, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision_config=dict(depth=32, hidden_size=1280, out_hidden_size=3584, intermediate_size=3420, num_heads=16, fullatt_block_indexes=[7, 15, 23, 31]),
    )
    model = Qwen2_5_VLForConditionalGeneration(config)

    def run(batch):
        grid = torch.tensor([[1, 32, 32]] * batch)  # a 448 x 448 image: 32 x 32 patches of 14 px
        patches = torch.randn(batch * 32 * 32, 3 * 2 * 14 * 14, dtype=model.dtype)
        image_tokens = 32 * 32 // 4
        ids = torch.cat(
            [torch.full((batch, 1), config.vision_start_token_id), torch.full((batch, image_tokens), config.image_token_id), torch.full((batch, 1), config.vision_end_token_id), torch.randint(100, 1000, (batch, 40))],
            dim=1,
        )
        return model.generate(input_ids=ids, pixel_values=patches, image_grid_thw=grid, max_new_tokens=64, min_new_tokens=64, do_sample=False)

    return model, run, 4, "image 448 px + 40-token prompt, generate 64 tokens"


def _zoedepth():
    from transformers import ZoeDepthConfig, ZoeDepthForDepthEstimation

    model = ZoeDepthForDepthEstimation(ZoeDepthConfig())

    def run(batch):
        return model(pixel_values=torch.randn(batch, 3, 384, 512, dtype=model.dtype))

    return model, run, 8, "forward at 384 x 512"


def _flux_fill():
    from diffusers import FluxTransformer2DModel

    model = FluxTransformer2DModel(in_channels=384, out_channels=64, guidance_embeds=True)

    def run(batch):
        tokens = (1024 // 16) ** 2
        return model(
            hidden_states=torch.randn(batch, tokens, 384, dtype=model.dtype), encoder_hidden_states=torch.randn(batch, 512, 4096, dtype=model.dtype),
            pooled_projections=torch.randn(batch, 768, dtype=model.dtype), timestep=torch.full((batch,), 0.5, dtype=model.dtype),
            img_ids=torch.zeros(tokens, 3), txt_ids=torch.zeros(512, 3), guidance=torch.full((batch,), 30.0, dtype=model.dtype),
        )

    return model, run, 1, "one denoising step at 1024 px; 28 steps per image"


def _sd3_5_controlnet():
    from diffusers import SD3ControlNetModel, SD3Transformer2DModel

    dims = dict(sample_size=128, patch_size=2, in_channels=16, attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192)
    transformer = SD3Transformer2DModel(num_layers=38, qk_norm="rms_norm", **dims)
    # the hub's SD3.5-Large ControlNets: 19 single-stream blocks, no text branch, no positional
    # embedding (diffusers' scripts/convert_sd3_controlnet_to_diffusers.py), 2.15B parameters
    controlnet = SD3ControlNetModel(
        patch_size=2, in_channels=16, num_layers=19, attention_head_dim=64, num_attention_heads=38, joint_attention_dim=None,
        caption_projection_dim=2048, pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=None, pos_embed_type=None,
        use_pos_embed=False, force_zeros_for_pooled_projection=False,
    )
    # as StableDiffusion3ControlNetPipeline does: the ControlNet borrows the transformer's patch embedding
    controlnet.pos_embed = controlnet._get_pos_embed_from_transformer(transformer)
    model = torch.nn.ModuleDict({"transformer": transformer, "controlnet": controlnet})

    def run(batch):
        latents = torch.randn(batch, 16, 128, 128, dtype=transformer.dtype)
        text = torch.randn(batch, 333, 4096, dtype=transformer.dtype)
        pooled = torch.randn(batch, 2048, dtype=transformer.dtype)
        t = torch.full((batch,), 500.0, dtype=transformer.dtype)
        # without a text branch the ControlNet takes no text tokens (the pipeline passes None)
        control = controlnet(hidden_states=latents, controlnet_cond=latents, encoder_hidden_states=None, pooled_projections=pooled, timestep=t, return_dict=False)[0]
        return transformer(hidden_states=latents, encoder_hidden_states=text, pooled_projections=pooled, timestep=t, block_controlnet_hidden_states=control)

    return model, run, 1, "ControlNet + transformer, one step at 1024 px; 28 steps per image"


MODELS = {
    "florence2": _florence2, "sam2": _sam2, "siglip": _siglip, "qwen2_5_vl": _qwen2_5_vl, "zoedepth": _zoedepth,
    "flux_fill": _flux_fill, "sd3_5+controlnet_depth": _sd3_5_controlnet,
}
STEPS = {"flux_fill": 28, "sd3_5+controlnet_depth": 28}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(name: str, device: str, repeats: int, batch_override: int | None = None) -> dict:
    start = time.perf_counter()
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        try:
            model, run, batch, what = MODELS[name]()
            batch = batch_override or batch
        finally:
            torch.set_default_dtype(torch.float32)
    model.eval()
    result = {"model": name, "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3), "batch": batch, "what": what, "build_s": round(time.perf_counter() - start, 1)}
    if device == "meta":
        return result
    with torch.device(device), torch.inference_mode():
        run(batch)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            run(batch)
        _sync(device)
        seconds = (time.perf_counter() - start) / repeats
    result.update(
        batch_s=round(seconds, 3),
        images_per_s=round(batch / (seconds * STEPS.get(name, 1)), 3),
        peak_gb=round(torch.cuda.max_memory_allocated() / 2**30, 1) if device == "cuda" else None,
    )
    del model
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu", "meta"])
    parser.add_argument("--batch", type=int, help="override every model's batch (a CPU smoke run uses 1)")
    parser.add_argument("--out", default="bench/results/gpu_full_size.jsonl")
    parser.add_argument("--only", nargs="*", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    device_name = {"cuda": torch.cuda.get_device_name() if args.device == "cuda" else "", "cpu": "cpu", "meta": "meta (no compute)"}[args.device]
    print(f"{'model':24}{'params':>9}{'batch':>6}{'build s':>9}{'batch s':>9}{'img/s':>9}{'peak GB':>9}  ({device_name})", flush=True)
    for name in args.only:
        try:
            result = measure(name, args.device, args.repeats, args.batch)
        except Exception as exc:  # one model failing must not cost the others their numbers
            result = {"model": name, "error": f"{type(exc).__name__}: {exc}"[:400]}
        result["device"] = device_name
        with open(out, "a") as handle:
            handle.write(json.dumps(result) + "\n")
        if "error" in result:
            print(f"{name:24} FAILED {result['error']}", flush=True)
        else:
            print(f"{name:24}{result['params_b']:>8.2f}B{result['batch']:>6}{result['build_s']:>9}{result.get('batch_s', '-'):>9}{result.get('images_per_s', '-'):>9}{str(result.get('peak_gb') or '-'):>9}", flush=True)


if __name__ == "__main__":
    main()
