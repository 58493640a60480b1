"""A tiny random-weight CLIP (CLIPModel + CLIPProcessor, the classes of openai/clip-vit-large-patch14)
saved as a loadable folder. Its tokenizer is a byte-level BPE with CLIP's normaliser,
pre-tokeniser and end-of-word suffix, the one the diffusion twins use."""

from __future__ import annotations

import pathlib

import torch

from stages.models.tiny.flux_fill import CLIP_MAX_LENGTH, clip_tokenizer

IMAGE_SIZE = 32
TEXT_LENGTH = CLIP_MAX_LENGTH


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tokenizer = clip_tokenizer()  # the same locally trained CLIP BPE as the diffusion twins
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(
        text_config=dict(
            common,
            vocab_size=len(tokenizer),
            max_position_embeddings=TEXT_LENGTH,
            bos_token_id=tokenizer.convert_tokens_to_ids("<|startoftext|>"),
            eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        ),
        vision_config=dict(common, image_size=IMAGE_SIZE, patch_size=8),
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    dest = pathlib.Path(dest)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest
