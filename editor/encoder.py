"""The MLLM encoder: Qwen2.5-VL reads the source image and the instruction in one forward pass;
its last hidden states, minus the system-prefix tokens, condition the DiT (Step1X-Edit's design).

The system turn is the same for every row, so its hidden states carry nothing about the edit and
would only dilute the conditioning: they are cut off by position, the prefix length being what
the tokenizer gives for the rendered system turn alone."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

# The instruction the MLLM reads before every edit; its tokens are dropped after the forward pass.
SYSTEM_PROMPT = (
    "Describe the input image: its objects, colours, shapes, textures, lighting and background. "
    "Then work out how the user's instruction changes it, and what must stay the same."
)
USER_TURN = "<|im_start|>user"


class MLLMEncoder:
    def __init__(self, model_ref: str, revision: str | None = None, image_px: int = 448, max_tokens: int = 640):
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        from stages.models.torch_device import load_model

        self.model_ref, self.revision = model_ref, revision
        self.image_px, self.max_tokens = image_px, max_tokens
        loaded = load_model(Qwen2_5_VLForConditionalGeneration, AutoProcessor, model_ref, revision)
        self.model, self.processor, self.device, self.dtype = loaded
        self.model.requires_grad_(False)
        self.prefix_tokens = self._prefix_length()

    @property
    def width(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    def render(self, instruction: str) -> str:
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]},
        ]
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)

    def _prefix_length(self) -> int:
        text = self.render("x")
        cut = text.find(USER_TURN)
        if cut <= 0:
            raise ValueError(f"the chat template of {self.model_ref} has no system turn before '{USER_TURN}'")
        return len(self.processor.tokenizer(text[:cut], add_special_tokens=False)["input_ids"])

    def _image(self, image: np.ndarray) -> np.ndarray:
        from PIL import Image

        pil = Image.fromarray(np.ascontiguousarray(image))
        scale = self.image_px / max(pil.size)
        if scale < 1:  # the MLLM's cost grows with image tokens; the DiT sees the pixels anyway
            pil = pil.resize((max(28, round(pil.width * scale)), max(28, round(pil.height * scale))), Image.BICUBIC)
        return np.array(pil)

    @torch.no_grad()
    def encode(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[torch.Tensor]:
        """One (L_i, width) float32 CPU tensor per (image, instruction): the hidden states after
        the system prefix, at most `max_tokens` of them."""
        texts = [self.render(instruction) for instruction in instructions]
        inputs = self.processor(text=texts, images=[self._image(i) for i in images], padding=True, return_tensors="pt").to(self.device)
        hidden = self.model.model(**inputs).last_hidden_state
        out = []
        for row, mask in zip(hidden, inputs["attention_mask"].bool()):
            real = row[mask]  # either padding side: keep the real tokens in order
            out.append(real[self.prefix_tokens : self.prefix_tokens + self.max_tokens].float().cpu())
        return out

    def describe(self) -> dict[str, Any]:
        return {"model": self.model_ref, "revision": self.revision, "prefix_tokens": self.prefix_tokens, "width": self.width}
