"""A tiny random-weight SigLIP (SiglipModel + SiglipProcessor) saved as a loadable folder.

The tokenizer is a byte-level BPE trained here on the tag vocabulary, so the folder needs
nothing from the hub. Scores from random weights are meaningless; the folder exists to run the
real loading and batching code on a CPU in a second."""

from __future__ import annotations

import pathlib

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    SiglipConfig,
    SiglipImageProcessor,
    SiglipModel,
    SiglipProcessor,
)

# SigLIP reads texts padded to this length and pools the last position, so the text tower
# must have at least as many positions.
TEXT_LENGTH = 64
IMAGE_SIZE = 32

_VOCABULARY = pathlib.Path(__file__).resolve().parents[3] / "configs" / "tag_vocabulary.txt"


def _corpus() -> list[str]:
    words = [w.strip() for w in _VOCABULARY.read_text().splitlines() if w.strip() and not w.startswith("#")]
    return [f"this is a photo of {w}." for w in words] + words


def _tokenizer() -> PreTrainedTokenizerFast:
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=TEXT_LENGTH
    )


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
    config = SiglipConfig(
        text_config=dict(
            common,
            vocab_size=len(tokenizer),
            max_position_embeddings=TEXT_LENGTH,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(common, image_size=IMAGE_SIZE, patch_size=8),
    )
    model = SiglipModel(config).eval()
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
    )
    dest = pathlib.Path(dest)
    model.save_pretrained(dest, safe_serialization=True)
    processor.save_pretrained(dest)
    return dest
