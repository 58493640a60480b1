"""A tiny random-weight Flux-Fill pipeline folder, same classes as black-forest-labs/FLUX.1-Fill-dev.

The text-side pieces (tokenizers trained here, CLIP and T5 encoders) and the VAE are shared with
the SD3 ControlNet twin."""

from __future__ import annotations

import json
import pathlib

import torch

# Enough text for the tokenizer trainers to learn a few hundred pieces, punctuation included.
CORPUS = [
    "a photo of a red car parked on the street, next to a tall building.",
    "replace the dog with a cat sitting on the wooden floor",
    "make the table look like polished marble; keep the lighting",
    "a blue sky over green hills and a quiet lake at sunset!",
    "remove the person on the left and fill in the background",
    "change the colour of the shirt to yellow (bright, saturated)",
    "an oil painting of a city at night, in the style of 1889",
    "add a small bird on the branch? 0 1 2 3 4 5 6 7 8 9 - ' \"",
]
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 32


def clip_tokenizer():
    """A byte-level BPE with CLIP's normaliser, pre-tokeniser and end-of-word suffix."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    template = CLIPTokenizer()
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
    return CLIPTokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]], model_max_length=CLIP_MAX_LENGTH)


def t5_tokenizer():
    """A unigram model with T5's special-token layout: <pad>=0, </s>=1, <unk>=2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False)
    unigram.train_from_iterator(CORPUS * 4, trainer)
    vocab = [tuple(piece) for piece in json.loads(unigram.to_str())["model"]["vocab"]]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def clip_text_model(vocab_size: int, hidden: int, with_projection: bool, projection_dim: int | None = None):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=CLIP_MAX_LENGTH,
        projection_dim=projection_dim or hidden,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def t5_encoder(vocab_size: int, d_model: int):
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=vocab_size, d_model=d_model, d_kv=8, d_ff=d_model * 2, num_layers=2, num_heads=2, relative_attention_num_buckets=8)
    return T5EncoderModel(config)


def vae(latent_channels: int, shift_factor: float | None):
    """Two blocks: 2x spatial compression, so 64-pixel tests stay small but keep every code path."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        scaling_factor=0.3611,
        shift_factor=shift_factor,
        use_quant_conv=False,
        use_post_quant_conv=False,
    )


def flux_components(autoencoder, in_channels: int, out_channels: int) -> dict:
    """The parts every tiny FLUX.1 pipeline shares (Fill, Kontext): a guidance-distilled
    transformer with the given token widths, the dynamic-shift scheduler, CLIP and T5."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel

    tokenizer, tokenizer_2 = clip_tokenizer(), t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=in_channels,
        out_channels=out_channels,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=True,  # the -dev checkpoints are guidance-distilled
        axes_dims_rope=(4, 6, 6),
    )
    return dict(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096),
        vae=autoencoder,
        text_encoder=clip_text_model(len(tokenizer), 32, with_projection=False),
        tokenizer=tokenizer,
        text_encoder_2=t5_encoder(len(tokenizer_2), 32),
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


def build(dest: pathlib.Path, seed: int = 0) -> pathlib.Path:
    from diffusers import FluxFillPipeline

    torch.manual_seed(seed)
    latent_channels = 4
    autoencoder = vae(latent_channels, shift_factor=0.1159)
    vae_scale = 2 ** (len(autoencoder.config.block_out_channels) - 1)
    packed_latents = latent_channels * 4  # 2x2 patches
    packed_mask = vae_scale * vae_scale * 4
    # noisy latents + masked-image latents + the mask folded into channels
    pipe = FluxFillPipeline(**flux_components(autoencoder, 2 * packed_latents + packed_mask, packed_latents))
    folder = pathlib.Path(dest)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder
