"""The judge's backends: Qwen2.5-VL in this process, or a served OpenAI-compatible model. Each
takes a batch of calls (images, then a prompt) and gives one ChatResult per call, a local
model's text held to the same rules as a server's reply (empty and refusing replies are
failures, not text to read)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from stages.models.openai_client import (
    EMPTY,
    REFUSED,
    ChatRequest,
    ChatResult,
    OpenAIChatClient,
    is_refusal,
)

_SNIPPET = 300  # characters of a reply kept for audit


@dataclass(frozen=True)
class JudgeCall:
    images: tuple[np.ndarray, ...]  # shown in this order, before the prompt
    prompt: str


class JudgeBackend(Protocol):
    uses_model: bool

    def setup(self) -> None: ...

    def ask(self, calls: Sequence[JudgeCall]) -> list[ChatResult]:
        """One result per call, in order: a reply's text, or a failure with its reason."""
        ...

    def describe(self) -> dict[str, Any]: ...


class OpenAIJudgeBackend:
    """A served judge. The client bounds requests in flight, retries busy servers with backoff,
    reads the key from the environment at each request and never keeps it."""

    uses_model = False

    def __init__(self, client: OpenAIChatClient, revision: str | None = None, max_new_tokens: int = 512, temperature: float = 0.0):
        self.client, self.revision = client, revision
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def setup(self) -> None:
        pass

    def ask(self, calls: Sequence[JudgeCall]) -> list[ChatResult]:
        results = self.client.complete_many(
            [ChatRequest(c.prompt, c.images, max_tokens=self.max_new_tokens, temperature=self.temperature) for c in calls]
        )
        if self.client.breaker is not None:
            self.client.breaker.check()  # raises CircuitOpen: the stage fails and the run stops
        return results

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "openai",
            "model": self.client.model,
            "revision": self.revision,
            "decoding": {"temperature": self.temperature, "max_tokens": self.max_new_tokens},
        }


class QwenJudgeBackend:
    """Qwen2.5-VL in this process, loaded once in `setup`, several images per prompt."""

    uses_model = True
    render: Callable[[int, str], str] | None = None  # the user turn's text; None: the processor's chat template

    def __init__(self, model_ref: str, revision: str | None = None, max_new_tokens: int = 512, temperature: float = 0.0):
        self.model_ref, self.revision = model_ref, revision
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.model = None
        self._info: dict[str, Any] = {"model": model_ref, "revision": revision}

    def setup(self) -> None:
        if self.model is None:
            from stages.models.qwen2_5_vl import QwenVL

            self.model = QwenVL(self.model_ref, self.revision)
            self._info = self.model.describe()

    def ask(self, calls: Sequence[JudgeCall]) -> list[ChatResult]:
        self.setup()
        results: list[ChatResult | None] = [None] * len(calls)
        # prompts with the same number of images batch together with little padding
        for count in sorted({len(c.images) for c in calls}):
            index = [i for i, c in enumerate(calls) if len(c.images) == count]
            texts = generate_with_images(
                self.model, [calls[i].images for i in index], [calls[i].prompt for i in index], self.max_new_tokens, self.temperature,
                render=self.render,
            )
            for i, text in zip(index, texts, strict=True):
                results[i] = text_result(text)
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        decoding = {"temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        return {"backend": "qwen", **self._info, "decoding": decoding}


def generate_with_images(
    model: Any,
    image_lists: Sequence[Sequence[np.ndarray]],
    prompts: Sequence[str],
    max_new_tokens: int,
    temperature: float,
    render: Callable[[int, str], str] | None = None,
) -> list[str]:
    """Like stages.qwen2_5_vl.QwenVL.generate, but each prompt follows its own list of images
    (Qwen2.5-VL reads several images in one user turn, in the order given). `render(image
    count, prompt)` writes the whole chat text instead of the processor's template (a model
    fine-tuned on its own layout is asked in that layout)."""
    import torch

    processor = model.processor
    texts = [
        render(len(images), prompt)
        if render is not None
        else processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for images, prompt in zip(image_lists, prompts, strict=True)
    ]
    # the processor pairs images with image tokens in order across the whole batch
    pixels = [np.array(image) for images in image_lists for image in images]
    inputs = processor(text=texts, images=pixels, padding=True, return_tensors="pt").to(model.device)
    # explicit either way: shipped generation configs may turn sampling on with their own settings
    if temperature > 0:
        sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
    else:
        sampling = {"do_sample": False}
    with torch.inference_mode():
        output = model.model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
    return processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def text_result(text: str | None) -> ChatResult:
    """A local model's text held to the same rules as a server's reply."""
    if text is None or not text.strip():
        return ChatResult(None, EMPTY, "empty reply")
    if is_refusal(text):
        return ChatResult(None, REFUSED, f"refusal: {snippet(text)}")
    return ChatResult(text)


def snippet(text: str, limit: int = _SNIPPET) -> str:
    """A reply shortened for the audit record, whitespace collapsed."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
