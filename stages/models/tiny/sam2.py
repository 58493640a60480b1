"""A tiny random-weight SAM-2 (transformers `Sam2Model` + `Sam2Processor`) saved as a loadable folder.

The Hiera trunk works on 64 px inputs: patch stride 4 gives 16x16 tokens, and three query-pooling
stages give 8x8, 4x4 and 2x2. The neck keeps the three finest levels (stride 4, 8 and 16), so
the prompt encoder's embedding grid is 64 / 16 = 4 and the decoder's low-resolution masks are
16x16. Masks from random weights are noise; the folder exists to run the real loading, prompting
and post-processing code on a CPU in a second."""

from __future__ import annotations

import pathlib

import torch
from transformers import (
    Sam2Config,
    Sam2HieraDetConfig,
    Sam2ImageProcessor,
    Sam2MaskDecoderConfig,
    Sam2Model,
    Sam2Processor,
    Sam2PromptEncoderConfig,
    Sam2VisionConfig,
)

IMAGE_SIZE = 64
HIDDEN = 32  # the neck, prompt encoder and mask decoder share one width


def _config() -> Sam2Config:
    trunk = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[IMAGE_SIZE, IMAGE_SIZE],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        # windows must tile each stage's grid (16, 8, 4, 2); the first block of a pooled stage
        # reuses the previous stage's window, so it may not be a global-attention block
        window_size_per_stage=[4, 4, 2, 1],
        global_attention_blocks=[3],
        window_positional_embedding_background_size=[2, 2],
    )
    side = IMAGE_SIZE // 4
    vision = Sam2VisionConfig(
        backbone_config=trunk,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[side, side], [side // 2, side // 2], [side // 4, side // 4]],
        fpn_hidden_size=HIDDEN,
    )
    return Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=HIDDEN, image_size=IMAGE_SIZE, patch_size=16),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=HIDDEN, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=HIDDEN
        ),
    )


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    torch.manual_seed(seed)
    model = Sam2Model(_config()).eval()
    processor = Sam2Processor(
        image_processor=Sam2ImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            mask_size={"height": IMAGE_SIZE // 4, "width": IMAGE_SIZE // 4},
        )
    )
    dest = pathlib.Path(dest)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest
