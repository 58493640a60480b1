"""EditScore as an in-process judge: Qwen2.5-VL with EditScore's LoRA merged in, asked EditScore's
prompts (editscore_rubric) in EditScore's chat layout.

Source checked: the `editscore` package 0.2 on PyPI (Apache-2.0; github.com/VectorSpaceLab/EditScore),
`editscore/mllm_tools/qwen25vl.py`: `Qwen2_5_VLForConditionalGeneration.from_pretrained(base)`,
then `PeftModel.from_pretrained(model, lora_path).merge_and_unload()`, and a hand-written chat text
that labels each image `<imgN>: ` before its vision tokens; and its README's usage: base
`Qwen/Qwen2.5-VL-7B-Instruct`, adapter `EditScore/EditScore-7B`, `score_range=25`, `num_pass=1`.
The model card (huggingface.co/EditScore/EditScore-7B) names that base and `library_name: peft`.

Differences from the package, on purpose: the adapter is read only as safetensors (its folder
must hold adapter_config.json and adapter_model.safetensors; no pickle is ever loaded); the
model answers at the judge's temperature (0: greedy, so a row's score never depends on the rows
batched with it; the package samples at 0.7 with top_p 0.9 and top_k 20, seed 42); one pass,
no self-ensembling. The package itself is not a dependency: it pins nothing we need and imports
qwen_vl_utils and vllm paths we do not use; peft is (the `editscore` extra)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from filters.judge.backends import QwenJudgeBackend
from pipeline.core.config import ConfigError

ADAPTER = "EditScore/EditScore-7B"
BASE = "Qwen/Qwen2.5-VL-7B-Instruct"  # the base EditScore-7B was trained on: the registry's qwen2_5_vl
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
PEFT_MISSING = "judge.backend editscore needs the peft package: pip install 'editing-data-pipeline[editscore]' (or pip install peft)"


def require_peft() -> None:
    if importlib.util.find_spec("peft") is None:
        raise ConfigError(PEFT_MISSING)


def chat_text(image_count: int, prompt: str) -> str:
    """EditScore's `apply_chat_template`: every image labelled `<imgN>: `, then the prompt."""
    text = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    text += "".join(f"<img{i}>: <|vision_start|><|image_pad|><|vision_end|>" for i in range(1, image_count + 1))
    return text + f"{prompt}<|im_end|>\n<|im_start|>assistant\n"


def adapter_folder(ref: str, revision: str | None = None) -> Path:
    """The adapter's local folder: `ref` itself, or its hub snapshot holding only the config and
    the safetensors weights (offline-first, like every model here)."""
    folder = Path(ref)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(ref, revision=revision, allow_patterns=list(ADAPTER_FILES)))
    missing = [name for name in ADAPTER_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"EditScore adapter {ref} has no {missing[0]}; only safetensors LoRA adapters are loaded")
    return folder


class EditScoreJudgeBackend(QwenJudgeBackend):
    """The Qwen backend with EditScore's adapter merged into the base at setup."""

    render = staticmethod(chat_text)

    def __init__(self, model_ref: str, revision: str | None = None, adapter_ref: str = ADAPTER, adapter_revision: str | None = None,
                 max_new_tokens: int = 512, temperature: float = 0.0):
        super().__init__(model_ref, revision, max_new_tokens, temperature)
        self.adapter_ref, self.adapter_revision = adapter_ref, adapter_revision

    def setup(self) -> None:
        if self.model is not None:
            return
        require_peft()
        from peft import PeftModel

        from stages.models.qwen2_5_vl import QwenVL

        folder = adapter_folder(self.adapter_ref, self.adapter_revision)
        model = QwenVL(self.model_ref, self.revision)
        # merged once: generation then runs at the base model's speed, with no adapter layers
        model.model = PeftModel.from_pretrained(model.model, str(folder)).merge_and_unload().eval()
        self.model, self._info = model, model.describe()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "backend": "editscore", "adapter": self.adapter_ref, "adapter_revision": self.adapter_revision}
