"""A tiny random-weight ZoeDepth (BEiT backbone, two metric bin heads like Intel/zoedepth-nyu-kitti)."""

from __future__ import annotations

import pathlib

import torch


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from transformers import (
        BeitConfig,
        ZoeDepthConfig,
        ZoeDepthForDepthEstimation,
        ZoeDepthImageProcessor,
    )

    torch.manual_seed(seed)
    backbone = BeitConfig(
        image_size=64,
        patch_size=16,
        num_hidden_layers=4,
        hidden_size=32,
        intermediate_size=64,
        num_attention_heads=2,
        use_relative_position_bias=True,
        reshape_hidden_states=False,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    config = ZoeDepthConfig(
        backbone_config=backbone,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        num_relative_features=8,
        bottleneck_features=16,
        bin_embedding_dim=16,
        num_attractors=[4, 4, 2, 1],
        bin_configurations=[
            {"name": "nyu", "n_bins": 16, "min_depth": 1e-3, "max_depth": 10.0},
            {"name": "kitti", "n_bins": 16, "min_depth": 1e-3, "max_depth": 80.0},
        ],
        # the library's patch transformer only accepts these with two heads
        num_patch_transformer_layers=4,
        patch_transformer_hidden_size=128,
        patch_transformer_intermediate_size=64,
        patch_transformer_num_attention_heads=2,
    )
    model = ZoeDepthForDepthEstimation(config)
    processor = ZoeDepthImageProcessor(size={"height": 64, "width": 64}, keep_aspect_ratio=True, ensure_multiple_of=32)
    folder = pathlib.Path(dest)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder
