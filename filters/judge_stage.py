"""The VIEScore judge over candidate rows: two backends behind one small interface, the retry
rule, and what each row records.

Backends: Qwen2.5-VL loaded in-process, or any OpenAI-compatible server (vLLM, GPT-4.1) through
stages.openai_client. Both see the same prompts with the images before the text: SC gets the
source then the edited image, PQ the edited image alone.

A reply that cannot be read is asked again once with a stricter prompt; if that fails too, the
row is `unscored`. A refusal, an empty reply, a timeout or a server that keeps failing is
`unscored` at once, with the reason: missing data, never a number. Rows that failed their gates
are not judged (state `none`); without a judge (the cpu profile) every row says that ranking uses
the gate score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from filters.viescore import (
    PQ,
    PROMPT_HASH,
    SC,
    ScoreReply,
    combine,
    match_source_size,
    parse_score_reply,
    pq_prompt,
    sc_prompt,
    strict_prompt,
)
from pipeline.core import schema
from pipeline.core.image_io import decode_png
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.models.openai_client import (
    EMPTY,
    REFUSED,
    ChatRequest,
    ChatResult,
    OpenAIChatClient,
    is_refusal,
)

STAGE_NAME = "judge"
SCORED, UNSCORED, NONE = "scored", "unscored", "none"
NO_JUDGE = "no judge on this profile: ranking uses the gate score"
REJECTED_BY_GATES = "rejected by gates"
_SNIPPET = 300  # characters of a reply kept for audit
_CHUNK_ROWS = 32  # rows decoded and judged together by judge_rows


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


# -- backends -------------------------------------------------------------------------------------


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
        return self.client.complete_many(
            [ChatRequest(c.prompt, c.images, max_tokens=self.max_new_tokens, temperature=self.temperature) for c in calls]
        )

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
                self.model, [calls[i].images for i in index], [calls[i].prompt for i in index], self.max_new_tokens, self.temperature
            )
            for i, text in zip(index, texts, strict=True):
                results[i] = text_result(text)
        return results  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        decoding = {"temperature": self.temperature, "max_new_tokens": self.max_new_tokens, "do_sample": self.temperature > 0}
        return {"backend": "qwen", **self._info, "decoding": decoding}


def generate_with_images(
    model: Any, image_lists: Sequence[Sequence[np.ndarray]], prompts: Sequence[str], max_new_tokens: int, temperature: float
) -> list[str]:
    """Like stages.qwen2_5_vl.QwenVL.generate, but each prompt follows its own list of images
    (Qwen2.5-VL reads several images in one user turn, in the order given)."""
    import torch

    processor = model.processor
    texts = [
        processor.apply_chat_template(
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
        return ChatResult(None, REFUSED, f"refusal: {_snippet(text)}")
    return ChatResult(text)


# -- the judge ------------------------------------------------------------------------------------


@dataclass
class CallOutcome:
    reply: ScoreReply | None  # None when no usable answer came
    reason: str | None  # why there is no usable answer
    attempts: int  # prompts sent: 1, or 2 after a stricter retry
    requests: int  # HTTP requests behind them (busy servers are retried by the client)
    rejected: list[str]  # why earlier replies could not be read
    last_reply: str | None
    retry: bool = False  # a readable-but-wrong answer: worth one stricter prompt

    def record(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "requests": self.requests,
            "reason": self.reason,
            "rejected_replies": self.rejected,
            "last_reply": self.last_reply,
        }


class Judge:
    def __init__(self, backend: JudgeBackend):
        self.backend = backend

    def setup(self) -> None:
        self.backend.setup()

    def settings(self) -> dict[str, Any]:
        """What every judgement records beside its scores."""
        return {**self.backend.describe(), "prompt_hash": PROMPT_HASH}

    def judge_triplets(self, triplets: Sequence[tuple[np.ndarray, np.ndarray, str]]) -> list[dict[str, Any]]:
        """One judgement record per (source, edited, instruction)."""
        calls: list[JudgeCall] = []
        for source, edited, instruction in triplets:
            edited = match_source_size(edited, source)
            calls.append(JudgeCall((source, edited), sc_prompt(instruction)))
            calls.append(JudgeCall((edited,), pq_prompt()))
        outcomes = self._ask_with_retry(calls)
        settings = self.settings()
        return [verdict(outcomes[2 * i], outcomes[2 * i + 1], settings) for i in range(len(triplets))]

    def _ask_with_retry(self, calls: list[JudgeCall]) -> list[CallOutcome]:
        first = self._ask(calls)
        outcomes = [read_result(result, 1, []) for result in first]
        # only readable-but-wrong answers earn a second, stricter prompt; failures are final
        again = [i for i, outcome in enumerate(outcomes) if outcome.retry]
        if again:
            retried = self._ask([JudgeCall(calls[i].images, strict_prompt(calls[i].prompt, outcomes[i].reason)) for i in again])
            for i, result in zip(again, retried):
                earlier = outcomes[i]
                outcome = read_result(result, 2, earlier.rejected + [earlier.reason])
                outcome.requests += earlier.requests
                outcomes[i] = outcome
        return outcomes

    def _ask(self, calls: list[JudgeCall]) -> list[ChatResult]:
        results = list(self.backend.ask(calls)) if calls else []
        if len(results) != len(calls):
            raise RuntimeError(f"judge backend gave {len(results)} replies for {len(calls)} prompts")
        return results


def read_result(result: ChatResult, attempts: int, rejected: list[str]) -> CallOutcome:
    snippet = _snippet(result.text) if result.text is not None else None
    if not result.ok:
        return CallOutcome(None, f"{result.failure}: {result.reason}", attempts, result.attempts, rejected, snippet)
    reply = parse_score_reply(result.text)
    if reply.refused:
        return CallOutcome(None, f"{REFUSED}: {reply.reason}", attempts, result.attempts, rejected, snippet)
    if not reply.ok:
        return CallOutcome(None, f"unreadable: {reply.reason}", attempts, result.attempts, rejected, snippet, retry=True)
    return CallOutcome(reply, None, attempts, result.attempts, rejected, snippet)


def verdict(sc: CallOutcome, pq: CallOutcome, settings: dict[str, Any]) -> dict[str, Any]:
    """The row's `judge` record. Scores appear only when both calls gave readable answers."""
    record: dict[str, Any] = {
        **settings,
        "state": UNSCORED,
        "reason": None,
        "sc": None,
        "pq": None,
        "o": None,
        "sc_scores": None,
        "pq_scores": None,
        "sc_reasoning": None,
        "pq_reasoning": None,
        "calls": {SC: sc.record(), PQ: pq.record()},
        "attempts": {SC: sc.attempts, PQ: pq.attempts},
    }
    if sc.reply is not None and pq.reply is not None:
        record.update(combine(sc.reply.scores, pq.reply.scores), state=SCORED, ranked_by="o")
        record.update(sc_scores=list(sc.reply.scores), pq_scores=list(pq.reply.scores))
        record.update(sc_reasoning=sc.reply.reasoning, pq_reasoning=pq.reply.reasoning)
    else:
        record["reason"] = "; ".join(f"{name}: {o.reason}" for name, o in ((SC, sc), (PQ, pq)) if o.reply is None)
    return record


def unscored(reason: str, settings: dict[str, Any]) -> dict[str, Any]:
    empty = CallOutcome(None, reason, 0, 0, [], None)
    record = verdict(empty, empty, settings)
    record["reason"] = reason
    return record


# -- rows -----------------------------------------------------------------------------------------


def write_judgement(row: Row, record: dict[str, Any]) -> Row:
    """`judge` gets the record; `scores.viescore` gets SC, PQ and O when scored, and any stale
    value is removed otherwise."""
    row["judge"] = schema.dumps(record)
    scores = schema.loads(row.get("scores"))
    if record["state"] == SCORED:
        scores["viescore"] = {"sc": record["sc"], "pq": record["pq"], "o": record["o"]}
    else:
        scores.pop("viescore", None)
    row["scores"] = schema.dumps(scores)
    return row


def judge_rows(rows: list[Row], judge: Judge | None) -> list[Row]:
    """Judges the `ok` rows in place and returns them all. `rejected` rows get state `none`;
    rows with no candidate (error, skipped, pending) are left as they are. With no judge every
    candidate says that ranking uses the gate score."""
    if judge is None:
        for row in rows:
            if row.get("status") in schema.CANDIDATE_STATUSES:
                reason = REJECTED_BY_GATES if row["status"] == schema.REJECTED else NO_JUDGE
                write_judgement(row, {"state": NONE, "reason": reason, "ranked_by": "gate_score"})
        return rows
    for row in rows:
        if row.get("status") == schema.REJECTED:
            write_judgement(row, {"state": NONE, "reason": REJECTED_BY_GATES})
    todo = [row for row in rows if row.get("status") == schema.OK]
    if todo:
        judge.setup()  # idempotent; the recorded settings then name what actually loaded
    for start in range(0, len(todo), _CHUNK_ROWS):
        _judge_chunk(todo[start : start + _CHUNK_ROWS], judge)
    return rows


def _judge_chunk(rows: list[Row], judge: Judge) -> None:
    ready: list[tuple[Row, tuple[np.ndarray, np.ndarray, str]]] = []
    settings = judge.settings()
    for row in rows:
        triplet, problem = _triplet(row)
        if problem:
            write_judgement(row, unscored(problem, settings))
        else:
            ready.append((row, triplet))
    records = judge.judge_triplets([triplet for _, triplet in ready])
    for (row, _), record in zip(ready, records, strict=True):
        write_judgement(row, record)


def _triplet(row: Row) -> tuple[tuple[np.ndarray, np.ndarray, str] | None, str | None]:
    instruction = (row.get("instruction_en") or "").strip()
    if not instruction:
        return None, "no English instruction to judge against"
    try:
        source = decode_png(row["source_image"]["bytes"])
        edited = decode_png(row["target_image"]["bytes"])
    except Exception as exc:  # an unreadable image is missing data for the judge, not a score
        return None, f"unreadable image: {type(exc).__name__}"
    return (source, edited, instruction), None


class JudgeStage(Stage):
    """The judge as a pipeline stage. It takes `ok` rows to judge and `rejected` rows to mark
    unjudged. With Qwen in-process it is a model stage (an actor pool keeps the model loaded);
    with a served judge it is a light stage whose concurrency lives in the client's thread pool."""

    name = STAGE_NAME
    accepts = (schema.OK, schema.REJECTED)

    def __init__(self, judge: Judge | None, resources: Resources | None = None, tasks: tuple[str, ...] | None = None):
        self.judge = judge
        self.tasks = tasks
        self.uses_model = bool(judge is not None and judge.backend.uses_model)
        self.resources = resources or Resources(num_cpus=0.25, batch_size=16)

    def setup(self) -> None:
        if self.judge is not None:
            self.judge.setup()

    def process_batch(self, rows: list[Row]) -> list[Row]:
        judge_rows(rows, self.judge)
        info = {"backend": "none"} if self.judge is None else _provenance(self.judge.settings())
        for row in rows:
            record_stage(row, self.name, **info)
        return rows


def _provenance(settings: dict[str, Any]) -> dict[str, Any]:
    keys = ("backend", "model", "revision", "dtype", "prompt_hash")
    return {k: settings[k] for k in keys if k in settings}


# -- from the config ------------------------------------------------------------------------------

BACKENDS = ("none", "qwen", "openai")


def make_judge(cfg: dict[str, Any]) -> Judge | None:
    """The judge the resolved config asks for (`judge:` block), or None for backend `none`.
    A Qwen judge with no `judge.model` loads what the profile gives the qwen2_5_vl family (the
    registry's checkpoint, or the tiny twin on the tiny profile)."""
    conf = cfg["judge"]
    backend = conf["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"judge.backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "none":
        return None
    decoding = {"max_new_tokens": int(conf["max_new_tokens"]), "temperature": float(conf["temperature"])}
    if backend == "openai":
        if not conf.get("url") or not conf.get("model"):
            raise ValueError("judge.backend openai needs judge.url (e.g. http://host:8000/v1) and judge.model")
        client = OpenAIChatClient(
            base_url=str(conf["url"]),
            model=str(conf["model"]),
            api_key_env=str(conf["api_key_env"]),
            timeout_s=float(conf["timeout_s"]),
            max_retries=int(conf["retries"]),
            backoff_s=float(conf["backoff_s"]),
            max_workers=int(conf["concurrency"]),
        )
        return Judge(OpenAIJudgeBackend(client, conf.get("revision"), **decoding))
    model, revision = conf.get("model"), conf.get("revision")
    if not model:
        from pipeline.core import models

        model, revision = models.resolve(cfg, "qwen2_5_vl")
    return Judge(QwenJudgeBackend(str(model), revision, **decoding))


def make_judge_stage(cfg: dict[str, Any]) -> JudgeStage:
    """The stage for the resolved config, sized by `judge.num_cpus/num_gpus/batch_size` (GPUs only
    for an in-process model)."""
    conf = cfg["judge"]
    judge = make_judge(cfg)
    in_process = judge is not None and judge.backend.uses_model
    resources = Resources(
        num_cpus=float(conf["num_cpus"]),
        num_gpus=float(conf["num_gpus"]) if in_process else 0.0,
        batch_size=int(conf["batch_size"]),
        concurrency=1,
    )
    return JudgeStage(judge, resources)


def _snippet(text: str, limit: int = _SNIPPET) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
