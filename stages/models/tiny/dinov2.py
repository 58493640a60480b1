"""A tiny random-weight DINOv2 ViT (timm's `vit_small_patch14_dinov2` architecture, the class of
timm/vit_small_patch14_dinov2.lvd142m) saved the way timm publishes models: config.json with the
architecture, its arguments and the preprocessing, plus model.safetensors. timm loads it back
with `create_model("local-dir:<folder>", pretrained=True)`."""

from __future__ import annotations

import pathlib

import torch

ARCHITECTURE = "vit_small_patch14_dinov2.lvd142m"
IMAGE_SIZE = 28  # two patches of 14 a side
MODEL_ARGS = dict(img_size=IMAGE_SIZE, embed_dim=32, depth=2, num_heads=2, num_classes=0)


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(ARCHITECTURE, pretrained=False, **MODEL_ARGS).eval()
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    timm.models.save_for_hf(model, dest, model_args=MODEL_ARGS, safe_serialization=True)
    return dest
