"""A tiny random LoRA adapter for the tiny Qwen2.5-VL twin, saved by peft as EditScore's is
(adapter_config.json + adapter_model.safetensors), with non-zero weights so merging it changes
the model."""

from __future__ import annotations

from pathlib import Path


def build(base: Path, dest: Path, seed: int = 0) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(base, use_safetensors=True)
    # init_lora_weights=False draws both LoRA matrices at random (peft's default zeroes B: a no-op adapter)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(dest, safe_serialization=True)
    return Path(dest)
