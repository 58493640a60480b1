"""A tiny random-weight Florence-2 (transformers `Florence2ForConditionalGeneration` + its
processor) saved as a loadable folder.

What the real checkpoint's folder carries and this one must carry too:
- a byte-level BPE tokenizer (trained here on the task prompts) extended with `<image>`,
  the task tags and the 1000 location tokens `<loc_0>`..`<loc_999>`;
- the processor's `post_processor_config`, without which `post_process_generation` refuses
  every task (`Unsupported parse task`);
- `image_seq_length` equal to the number of tokens the vision tower emits: one per cell of the
  final feature grid (the strides multiply to 32) plus one pooled temporal token.
Text from random weights is junk; the folder exists to run the real loading, prompting and
parsing code on a CPU in a second."""

from __future__ import annotations

import json
import math
import pathlib

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    BartConfig,
    BartTokenizer,
    CLIPImageProcessor,
    Florence2Config,
    Florence2ForConditionalGeneration,
    Florence2Processor,
    Florence2VisionConfig,
)

IMAGE_SIZE = 64
PATCH_STRIDE = (4, 2, 2, 2)
TEXT_WIDTH = 32

# The tags Florence-2 writes around its answers, and its location bins.
TASK_TOKENS = [
    "<od>", "</od>", "<ocr>", "</ocr>", "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>",
    "<grounding>", "</grounding>", "<seg>", "</seg>", "<sep>", "<poly>", "</poly>", "<and>",
]  # fmt: skip
LOC_TOKENS = [f"<loc_{i}>" for i in range(1000)]

# Same keys and rules as the released processors; the OCR pattern pairs text with a quad.
POST_PROCESSOR_CONFIG = {
    "ocr": {"PATTERN": r"(.+?)" + r"<loc_(\d+)>" * 8, "AREA_THRESHOLD": 0.0},
    "phrase_grounding": {"banned_grounding_tokens": ["the image", "image", "photo", "picture", "it"]},
    "pure_text": {},
    "description_with_bboxes": {},
    "description_with_polygons": {},
    "polygons": {},
    "bboxes": {},
    "description_with_bboxes_or_polygons": {},
}

_CORPUS = [
    "Locate the objects with category name in the image.",
    "Locate the phrases in the caption: a red car and a dog",
    "What is the text in the image, with regions?",
    "Describe with a paragraph what is shown in the image.",
    "a person riding a horse next to a cat, a cup, a chair and a table on green grass",
]


def image_seq_length(image_size: int = IMAGE_SIZE, strides: tuple[int, ...] = PATCH_STRIDE) -> int:
    side = image_size // math.prod(strides)
    return side * side + 1


def _tokenizer() -> BartTokenizer:
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # BART's order: bos 0, pad 1, eos 2
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_CORPUS * 4, trainer)
    trained = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tokenizer = BartTokenizer(vocab=trained["vocab"], merges=merges, image_token="<image>")
    tokenizer.add_tokens(["<image>"] + TASK_TOKENS + LOC_TOKENS, special_tokens=True)
    return tokenizer


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    vision = Florence2VisionConfig(
        depths=[1, 1, 1, 1],
        patch_stride=list(PATCH_STRIDE),
        embed_dim=[8, 16, 32, 32],
        num_heads=[1, 1, 2, 2],
        num_groups=[1, 1, 2, 2],
        window_size=2,
        projection_dim=TEXT_WIDTH,
        drop_path_rate=0.0,
    )
    text = BartConfig(
        vocab_size=len(tokenizer),
        d_model=TEXT_WIDTH,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=tokenizer.bos_token_id,
        forced_eos_token_id=tokenizer.eos_token_id,
    )
    model = Florence2ForConditionalGeneration(
        Florence2Config(vision_config=vision, text_config=text, image_token_id=tokenizer.image_token_id)
    ).eval()
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
        resample=3,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
        image_seq_length=image_seq_length(),
    )
    processor = Florence2Processor(
        image_processor=image_processor, tokenizer=tokenizer, post_processor_config=POST_PROCESSOR_CONFIG
    )
    dest = pathlib.Path(dest)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest
