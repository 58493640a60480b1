"""A tiny random-weight CLIP (CLIPModel + CLIPProcessor, the classes of openai/clip-vit-large-patch14)
saved as a loadable folder. Its tokenizer is a byte-level BPE with CLIP's normaliser,
pre-tokeniser and end-of-word suffix, trained here on the kind of captions the CLIP gate writes."""

from __future__ import annotations

import json
import pathlib

import torch

IMAGE_SIZE = 32
TEXT_LENGTH = 77

CORPUS = [
    "a photo of a red cup on a saucer",
    "a photo of a spacesuit made of marble, wood, gold or brick",
    "a photo with a spoon. a photo without a cat",
    "a photo of a rocket in front of a lawn, a beach or a night sky",
    "a watercolour painting, a pencil sketch, an oil painting, pixel art, line art",
    'a photo with the text "COFFEE" and the text "JUICE"',
    "a photo with a warm, cool, black-and-white or vintage look; brighter, darker, less hazy",
    "green blue yellow purple orange pink cyan 0 1 2 3 4 5 6 7 8 9 - ' \" ( ) ! ? ;",
]


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer()  # an empty CLIP tokenizer lends its normaliser and pre-tokeniser
    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    bpe.normalizer = template.backend_tokenizer.normalizer
    bpe.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|startoftext|>", "<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(CORPUS * 4, trainer)
    model = json.loads(bpe.to_str())["model"]
    return CLIPTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], model_max_length=TEXT_LENGTH)


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tokenizer = _tokenizer()
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
