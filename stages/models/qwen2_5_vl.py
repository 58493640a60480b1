"""Qwen2.5-VL as a recognition step: list the objects in the image, pick one to edit and what it
should become, answered as JSON.

`QwenVL.generate` is the batched model call (one image and one prompt per reply, the image before
the text in the user turn). The stage accepts any function with the same signature, so an
OpenAI-compatible server (`OpenAIChatClient.generate`) or a test's scripted replies can stand in.
A reply that is not valid JSON for the schema gets one retry with a stricter prompt; after that
the row keeps whatever choice it already had and the fallback is recorded. Nothing is invented.

Usage checked against transformers' models/qwen2_5_vl/modeling_qwen2_5_vl.py (the
`Qwen2_5_VLForConditionalGeneration.forward` example for Qwen/Qwen2.5-VL-7B-Instruct): an image
entry before the text in the user turn, `apply_chat_template(add_generation_prompt=True)`, and
only the new tokens decoded with `skip_special_tokens=True`."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from pipeline.core.image_io import decode_image
from pipeline.core.rows import record_fallback, record_stage, update_work, work
from pipeline.core.stage import ModelStage, ModelUse, Resources, Row
from stages.models.mllm_json import ParsedReply, parse_reply
from stages.models.torch_device import load_model, model_info

# (images, prompts, max_new_tokens, temperature) -> one reply per prompt: a string, or a result
# object with `ok`, `text`, `failure` and `reason` (what OpenAIChatClient returns)
GenerateFn = Callable[[Sequence[np.ndarray], Sequence[str], int, float], Sequence[Any]]

CHOICE_SCHEMA = {"objects": [str], "object": str, "change_to": str}

CHOICE_PROMPT = (
    "List the distinct objects you can see in this image. Then choose one of them whose edit "
    "would be clearly visible, and say what it should be changed into{hint}.\n"
    "Answer with one JSON object and nothing else, with exactly these keys:\n"
    '{{"objects": ["<object>", ...], "object": "<the object to edit, copied from objects>", '
    '"change_to": "<what it becomes>"}}'
)
STRICT_SUFFIX = (
    "\n\nYour previous answer could not be used: {reason}. Reply with only the JSON object: no "
    "prose, no code fences, no comments. Keys: objects (a non-empty list of strings), object (a "
    "string copied from objects), change_to (a string{options})."
)


class QwenVL:
    """Qwen2_5_VLForConditionalGeneration and its processor, loaded once."""

    def __init__(self, model_ref: str, revision: str | None = None):
        from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

        self.model_ref, self.revision = model_ref, revision
        self.model, self.processor, self.device, self.dtype = load_model(
            Qwen2_5_VLForConditionalGeneration, AutoProcessor, model_ref, revision
        )
        # generation continues each prompt from its last token, so batches pad on the left
        self.processor.tokenizer.padding_side = "left"

    def generate(
        self, images: Sequence[np.ndarray], prompts: Sequence[str], max_new_tokens: int = 256, temperature: float = 0.0
    ) -> list[str]:
        import torch

        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        texts = [
            self.processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for prompt in prompts
        ]
        # decoded PNGs are read-only views; torch wants arrays it may write to
        pixels = [np.array(image) for image in images]
        inputs = self.processor(text=texts, images=pixels, padding=True, return_tensors="pt").to(self.device)
        # explicit either way: shipped generation configs may turn sampling on with their own settings
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
        else:
            sampling = {"do_sample": False}
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, **sampling)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(new_tokens, skip_special_tokens=True)

    def describe(self) -> dict[str, Any]:
        return model_info(self.model_ref, self.revision, self.model, self.dtype)


def reply_text(reply: Any) -> tuple[str | None, str | None]:
    """A reply's text, or why there is none (a failed server request)."""
    if reply is None or isinstance(reply, str):
        return reply, None
    if not reply.ok:
        return None, f"{reply.failure}: {reply.reason}"
    return reply.text, None


def read_edit_choice(reply: Any, allowed_targets: Sequence[str] | None = None) -> ParsedReply:
    """A reply checked against CHOICE_SCHEMA and for consistency: the chosen object is one the
    reply listed, and the target is one of `allowed_targets` when those are given."""
    text, failure = reply_text(reply)
    if failure:
        return ParsedReply(None, failure)
    parsed = parse_reply(text, CHOICE_SCHEMA)
    if not parsed.ok:
        return parsed
    value = parsed.value
    listed = {o.strip().lower() for o in value["objects"]}
    if value["object"].strip().lower() not in listed:
        return ParsedReply(None, f"object '{value['object']}' is not among the listed objects")
    if allowed_targets is not None and value["change_to"].strip().lower() not in {t.lower() for t in allowed_targets}:
        return ParsedReply(None, f"change_to '{value['change_to']}' is not one of the allowed targets")
    if value["change_to"].strip().lower() == value["object"].strip().lower():
        return ParsedReply(None, "change_to is the object itself")
    return ParsedReply(
        {
            "objects": [o.strip() for o in value["objects"]],
            "object": value["object"].strip(),
            "change_to": value["change_to"].strip(),
        }
    )


class QwenStage(ModelStage):
    """What the Qwen2.5-VL stages share: built from `model_stages.qwen2_5_vl`, the model loaded
    once per actor unless a `generate` function was handed in (tests). A subclass's constructor
    takes (model_ref, revision, max_new_tokens=, temperature=, tasks=) and sets `_generate`."""

    model = ModelUse("qwen2_5_vl", "qwen2_5_vl")
    _generate: GenerateFn | None = None

    @classmethod
    def from_settings(cls, cfg, params, refs, tasks):
        ref, revision = refs["qwen2_5_vl"]
        return cls(ref, revision, max_new_tokens=params["max_new_tokens"], temperature=params["temperature"], tasks=tasks)

    def setup(self) -> None:
        if self._generate is None:
            model = QwenVL(self.model_ref, self.revision)
            self._generate, self._info = model.generate, model.describe()


class QwenChooseEditStage(QwenStage):
    """Writes `seen_objects` and `edit_choice` ({object, change_to}) into the row's work state,
    or leaves an existing `edit_choice` alone and records a fallback."""

    name = "mllm_choose_edit"
    reads = ("source_image", "work.edit_choice?")
    writes = ("work.seen_objects", "work.edit_choice", "provenance")

    def __init__(
        self,
        model_ref: str,
        revision: str | None = None,
        target_hint: str = "",
        allowed_targets: Sequence[str] | None = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        tasks: tuple[str, ...] | None = None,
        resources: Resources | None = None,
        generate: GenerateFn | None = None,
    ):
        """`target_hint` narrows the change in words (e.g. "a new colour"); `allowed_targets`,
        when given, is listed in the prompt and enforced on the answer."""
        self.model_ref, self.revision = model_ref, revision
        self.allowed_targets = list(allowed_targets) if allowed_targets is not None else None
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.tasks = tasks
        self.resources = resources or self.resources
        options = f": one of {', '.join(self.allowed_targets)}" if self.allowed_targets else ""
        hint = f" ({target_hint}{options})" if target_hint or options else ""
        self.prompt = CHOICE_PROMPT.format(hint=hint)
        self._options = options
        self._generate = generate
        self._info: dict[str, Any] = {"model": model_ref, "revision": revision}

    def strict_prompt(self, reason: str) -> str:
        return self.prompt + STRICT_SUFFIX.format(reason=reason, options=self._options)

    def process_batch(self, rows: list[Row]) -> list[Row]:
        if self._generate is None:
            self.setup()
        images = [decode_image(row["source_image"]["bytes"]) for row in rows]
        first = self._ask(images, [self.prompt] * len(rows))
        results, attempts = list(first), [1] * len(rows)
        again = [i for i, r in enumerate(results) if not r.ok]
        if again:
            retried = self._ask([images[i] for i in again], [self.strict_prompt(results[i].reason) for i in again])
            for i, result in zip(again, retried):
                results[i], attempts[i] = result, 2
        for row, result, tries, initial in zip(rows, results, attempts, first):
            if result.ok:
                choice = {k: result.value[k] for k in ("object", "change_to")}
                update_work(row, seen_objects=result.value["objects"], edit_choice=choice)
            else:
                kept = "kept the existing choice" if "edit_choice" in work(row) else "no choice was set"
                what = f"no usable answer after a stricter retry ({result.reason}); {kept}"
                record_fallback(row, self.name, what)
            reasons = [r.reason for r in (initial, result) if not r.ok]
            record_stage(row, self.name, attempts=tries, rejected_replies=reasons, **self._info)
        return rows

    def _ask(self, images: list[np.ndarray], prompts: list[str]) -> list[ParsedReply]:
        replies = list(self._generate(images, prompts, self.max_new_tokens, self.temperature))
        if len(replies) != len(prompts):
            raise RuntimeError(f"{self.name}: {len(replies)} replies for {len(prompts)} prompts")
        return [read_edit_choice(reply, self.allowed_targets) for reply in replies]
