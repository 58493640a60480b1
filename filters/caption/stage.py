"""The captioner as a pipeline stage, and the stage the resolved config's `captioner:` block asks
for (backend template, qwen or openai).

Which rows: `ok` rows are captioned; `rejected` rows keep their templates (the gates already
said no, so no model time goes to them) unless `captioner.rows` is `candidates` (the tiny
profile, whose noise fails every gate, so that its captioner runs at all; or rejected rows wanted
as worded negatives); error and skipped rows have no instruction at all.
Retry rule (as the judge's): a readable reply that fails validation earns one stricter prompt;
a failed request (a timeout or a busy server after the client's own retries, a refusal, an empty
reply) is final. Either way a row that ends without a usable reply keeps its template
instruction, with the fallback and its reason in provenance. A Qwen model in this process is
asked one row at a time: batched generation pads on the left, which can change a greedy bf16
decode, and a row's words must not depend on the rows beside it."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from filters.caption.prompt import PROMPT_HASH, caption_prompt, strict_prompt
from filters.caption.reply import read_caption
from filters.caption.terms import Term, key_terms
from filters.judge.backends import JudgeBackend, JudgeCall, snippet
from filters.judge.stage import make_backend, sizing
from pipeline.core import schema
from pipeline.core.image_io import decode_image, decode_mask
from pipeline.core.rows import provenance, record_fallback, record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.models.mllm_json import ParsedReply
from stages.models.openai_client import ChatResult

STAGE_NAME = "caption"
BACKENDS = ("template", "qwen", "openai")
REGISTERS = ("imperative", "descriptive")
PRIMARY = ("mixed", *REGISTERS)
ROWS = ("ok", "candidates")  # which rows are captioned: ok ones, or rejected ones too
MLLM, TEMPLATE = "mllm", "template"
TEMPLATE_PROFILE = "captioner backend template (the cpu profile's default): the recipe's template instruction"
REJECTED_BY_GATES = "rejected by gates: not captioned"


class CaptionStage(Stage):
    name = STAGE_NAME
    reads = ("status", "task", "sample_id", "source_image", "target_image", "mask?", "edit", "instruction_en", "instruction_zh", "provenance")
    writes = (
        "instruction_en", "instruction_zh", "instruction_source", "instruction_register", "instructions",
        "source_caption", "target_caption", "provenance",
    )
    accepts = (schema.OK, schema.REJECTED)

    def __init__(
        self,
        backend: JudgeBackend | None,
        primary_register: str = "mixed",
        resources: Resources | None = None,
        tasks: tuple[str, ...] | None = None,
        loads: tuple[str, ...] = (),
        api_key_env: str = "OPENAI_API_KEY",
        rows: str = "ok",
    ):
        if rows not in ROWS:
            raise ValueError(f"captioner.rows must be one of {', '.join(ROWS)}, not {rows!r}")
        if primary_register not in PRIMARY:
            raise ValueError(f"captioner.primary_register must be one of {', '.join(PRIMARY)}, not {primary_register!r}")
        self.backend, self.primary_register = backend, primary_register
        self.tasks, self.loads, self.api_key_env = tasks, tuple(loads), api_key_env
        self.statuses = (schema.OK,) if rows == "ok" else schema.CANDIDATE_STATUSES
        self.uses_model = bool(backend is not None and backend.uses_model)
        self.resources = resources or Resources(num_cpus=0.25, batch_size=8)

    def setup(self) -> None:
        if self.backend is not None:
            self.backend.setup()

    def process_batch(self, rows: list[Row]) -> list[Row]:
        todo = []
        for row in rows:
            if self.backend is None:
                keep_template(row, TEMPLATE_PROFILE)
            elif row.get("status") not in self.statuses:
                keep_template(row, REJECTED_BY_GATES)
            else:
                todo.append(row)
        if todo:
            self.setup()  # idempotent; the recorded settings then name what actually loaded
            self._caption(todo)
        return rows

    def _caption(self, rows: list[Row]) -> None:
        terms = [key_terms(r["task"], schema.loads(r.get("edit"))) for r in rows]
        images = [_pictures(r) for r in rows]
        prompts = [caption_prompt(r["task"], schema.loads(r.get("edit")), t, len(i) == 3) for r, t, i in zip(rows, terms, images)]
        outcomes = [_Outcome() for _ in rows]
        for i, result in enumerate(self._ask([JudgeCall(im, p) for im, p in zip(images, prompts)])):
            outcomes[i].take(result, terms[i], self._key())
        again = [i for i, o in enumerate(outcomes) if o.retry]
        if again:
            calls = [JudgeCall(images[i], strict_prompt(prompts[i], outcomes[i].reason, terms[i])) for i in again]
            for i, result in zip(again, self._ask(calls)):
                outcomes[i].take(result, terms[i], self._key())
        info = {k: v for k, v in self.backend.describe().items() if k in ("backend", "model", "revision", "dtype")}
        for row, outcome in zip(rows, outcomes):
            if outcome.value is not None:
                self._write(row, outcome.value)
            else:
                keep_template(row, None)
                record_fallback(row, self.name, f"no usable caption ({outcome.reason}); kept the template instruction")
            record_stage(row, self.name, prompt_hash=PROMPT_HASH, fallback_reason=outcome.reason if outcome.value is None else None, **outcome.record(), **info)

    def _ask(self, calls: list[JudgeCall]) -> list[ChatResult]:
        # in-process: one call at a time (see the module's docstring); a server: all at once,
        # the client bounding what is in flight
        if self.uses_model:
            results = [r for call in calls for r in self.backend.ask([call])]
        else:
            results = list(self.backend.ask(calls))
        if len(results) != len(calls):
            raise RuntimeError(f"captioner backend gave {len(results)} replies for {len(calls)} prompts")
        return results

    def _key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def _write(self, row: Row, value: dict[str, Any]) -> None:
        register = self.primary_register
        if register == "mixed":
            register = REGISTERS[int(hashlib.sha256(f"{row['sample_id']}|register".encode()).hexdigest(), 16) % 2]
        template = {"en": row.get("instruction_en"), "zh": row.get("instruction_zh")}
        chosen = value["registers"][register]
        row["instruction_en"], row["instruction_zh"] = chosen["en"], chosen["zh"]
        row["instruction_source"], row["instruction_register"] = MLLM, register
        row["instructions"] = schema.dumps({"source": MLLM, "registers": value["registers"], "template": template})
        row["source_caption"], row["target_caption"] = value["source_caption"], value["target_caption"]
        record_stage(row, self.name, instruction_source=MLLM, register=register)


class _Outcome:
    """One row's replies so far: the usable value, or why there is none and whether a stricter
    prompt is worth sending."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.reason: str | None = None
        self.retry = False
        self.attempts = self.requests = 0
        self.rejected: list[str] = []

    def take(self, result: ChatResult, terms: list[Term], key: str | None) -> None:
        self.attempts += 1
        self.requests += result.attempts
        if not result.ok:
            parsed, self.retry = ParsedReply(None, f"{result.failure}: {result.reason}"), False
        else:
            parsed = read_caption(result.text, terms)
            self.retry = not parsed.ok and self.attempts == 1
        self.value, self.reason = parsed.value, _scrub(parsed.reason, key)
        if not parsed.ok:
            self.rejected.append(self.reason)
            if result.text is not None:
                self.rejected[-1] += f" | reply: {_scrub(snippet(result.text, 160), key)}"

    def record(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "requests": self.requests, "rejected_replies": self.rejected}


def keep_template(row: Row, why: str | None) -> Row:
    """The row keeps the instruction it has: the recipe's template, or motion's described one."""
    source = MLLM if _described_by_mllm(row) else TEMPLATE
    row["instruction_source"], row["instruction_register"] = source, "imperative"
    registers = {"imperative": {"en": row.get("instruction_en"), "zh": row.get("instruction_zh")}}
    row["instructions"] = schema.dumps({"source": source, "registers": registers})
    row["source_caption"] = row["target_caption"] = None
    record_stage(row, STAGE_NAME, instruction_source=source, **({"kept_because": why} if why else {}))
    return row


def _described_by_mllm(row: Row) -> bool:
    """An earlier stage (motion's describer) already had a model word the instruction."""
    stages = provenance(row).get("stages") or {}
    return any(isinstance(info, dict) and info.get("instruction_source") == MLLM for name, info in stages.items() if name != STAGE_NAME)


def _pictures(row: Row) -> tuple[np.ndarray, ...]:
    source = decode_image(row["source_image"]["bytes"])
    target = decode_image(row["target_image"]["bytes"])
    if not row.get("mask"):
        return source, target
    mask = decode_mask(row["mask"]["bytes"])
    return source, target, np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)


def _scrub(text: str | None, key: str | None) -> str | None:
    return text.replace(key, "[redacted]") if text and key else text


# -- from the config ------------------------------------------------------------------------------


def make_caption_stage(cfg: dict[str, Any]) -> CaptionStage:
    """The stage for the resolved config: templates kept (backend template), or a captioner sized
    by `captioner.num_cpus/num_gpus/batch_size` (GPUs only for an in-process model). A Qwen
    captioner with no `captioner.model` loads the registry's qwen2_5_vl and says so in `loads`,
    so the tiny profile builds its twin first."""
    conf = cfg["captioner"]
    if conf["backend"] not in BACKENDS:
        raise ValueError(f"captioner.backend must be one of {', '.join(BACKENDS)}, not {conf['backend']!r}")
    backend = None if conf["backend"] == "template" else make_backend(conf, cfg, "captioner")
    resources, loads = sizing(conf, backend is not None and backend.uses_model)
    return CaptionStage(
        backend, str(conf["primary_register"]), resources, loads=loads, api_key_env=str(conf["api_key_env"]), rows=str(conf["rows"])
    )
