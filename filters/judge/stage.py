"""The judge as a pipeline stage, and the judge and stage that the resolved config's `judge:`
block asks for (backend none, qwen, openai or editscore)."""

from __future__ import annotations

from typing import Any

from filters.judge.backends import OpenAIJudgeBackend, QwenJudgeBackend
from filters.judge.editscore_backend import EditScoreJudgeBackend, require_peft
from filters.judge.editscore_rubric import EDITSCORE
from filters.judge.policy import Judge, judge_rows
from pipeline.core import schema
from pipeline.core.config import ConfigError
from pipeline.core.rows import record_stage
from pipeline.core.stage import Resources, Row, Stage
from stages.models.circuit import CircuitBreaker
from stages.models.openai_client import OpenAIChatClient
from stages.models.server_probe import shown_url

STAGE_NAME = "judge"
BACKENDS = ("none", "qwen", "openai", "editscore")
IN_PROCESS_QWEN = ("qwen", "editscore")  # backends that load a Qwen2.5-VL here
QWEN_FAMILY = "qwen2_5_vl"  # the registry family a Qwen judge loads when no judge.model is given


class JudgeStage(Stage):
    """The judge as a pipeline stage. It takes `ok` rows to judge and `rejected` rows to mark
    unjudged. With Qwen in-process it is a model stage (an actor pool keeps the model loaded);
    with a served judge it is a light stage whose concurrency lives in the client's thread pool.
    `loads` names the registry families whose weights it loads from the registry (their tiny
    twins are built before it runs); a judge given its own model or a server loads none."""

    name = STAGE_NAME
    reads = ("status", "source_image", "target_image", "instruction_en", "scores", "judge?", "reason?")
    writes = ("judge", "scores", "provenance")
    accepts = (schema.OK, schema.REJECTED)

    def __init__(
        self,
        judge: Judge | None,
        resources: Resources | None = None,
        tasks: tuple[str, ...] | None = None,
        loads: tuple[str, ...] = (),
    ):
        self.judge = judge
        self.tasks = tasks
        self.loads = tuple(loads)
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
    keys = ("backend", "model", "revision", "dtype", "adapter", "prompt_hash")
    return {k: settings[k] for k in keys if k in settings}


# -- from the config ------------------------------------------------------------------------------


def make_backend(conf: dict[str, Any], cfg: dict[str, Any], section: str = "judge") -> OpenAIJudgeBackend | QwenJudgeBackend:
    """The MLLM backend a `judge:`-shaped config block asks for (backend qwen or openai); the
    captioner's block has the same keys. A Qwen backend with no `model` loads what the profile
    gives the qwen2_5_vl family (the registry's checkpoint, or the tiny twin on the tiny profile)."""
    decoding = {"max_new_tokens": int(conf["max_new_tokens"]), "temperature": float(conf["temperature"])}
    if conf["backend"] == "openai":
        if not conf.get("url") or not conf.get("model"):
            raise ValueError(f"{section}.backend openai needs {section}.url (e.g. http://host:8000/v1) and {section}.model")
        client = OpenAIChatClient(
            base_url=str(conf["url"]),
            model=str(conf["model"]),
            api_key_env=str(conf["api_key_env"]),
            timeout_s=float(conf["timeout_s"]),
            max_retries=int(conf["retries"]),
            backoff_s=float(conf["backoff_s"]),
            max_workers=int(conf["concurrency"]),
            breaker=CircuitBreaker(int(conf.get("max_consecutive_failures") or 0), f"{section} server at {shown_url(str(conf['url']))}"),
        )
        return OpenAIJudgeBackend(client, conf.get("revision"), **decoding)
    return QwenJudgeBackend(*_qwen_model(conf, cfg), **decoding)


def make_judge(cfg: dict[str, Any]) -> Judge | None:
    """The judge the resolved config asks for (`judge:` block), or None for backend `none`.
    EditScore is Qwen2.5-VL (`judge.model`, else the profile's qwen2_5_vl) with the LoRA
    `judge.adapter` merged in, asked in its own rubric."""
    conf = cfg["judge"]
    backend = conf["backend"]
    if backend not in BACKENDS:
        raise ConfigError(f"judge.backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend == "none":
        return None
    if backend == "editscore":
        require_peft()  # before any stage is built, not in an actor half-way through a run
        if not conf.get("adapter"):
            raise ConfigError("judge.backend editscore needs judge.adapter (the LoRA: EditScore/EditScore-7B or a folder)")
        model, revision = _qwen_model(conf, cfg)
        decoding = {"max_new_tokens": int(conf["max_new_tokens"]), "temperature": float(conf["temperature"])}
        return Judge(EditScoreJudgeBackend(model, revision, str(conf["adapter"]), conf.get("adapter_revision"), **decoding), EDITSCORE)
    return Judge(make_backend(conf, cfg))


def _qwen_model(conf: dict[str, Any], cfg: dict[str, Any]) -> tuple[str, str | None]:
    """`model` (and `revision`) of a judge block, else the profile's qwen2_5_vl family."""
    if conf.get("model"):
        return str(conf["model"]), conf.get("revision")
    from pipeline.core import models

    return models.resolve(cfg, QWEN_FAMILY)


def make_judge_stage(cfg: dict[str, Any]) -> JudgeStage:
    """The stage for the resolved config, sized by `judge.num_cpus/num_gpus/batch_size` (GPUs only
    for an in-process model). A Qwen judge with no `judge.model` loads the registry's qwen2_5_vl
    and says so in `loads`, so the tiny profile builds its twin first."""
    judge = make_judge(cfg)
    resources, loads = sizing(cfg["judge"], judge is not None and judge.backend.uses_model)
    return JudgeStage(judge, resources, loads=loads)


def sizing(conf: dict[str, Any], in_process: bool) -> tuple[Resources, tuple[str, ...]]:
    """The resources and registry loads of a stage over a `judge:`-shaped block: one actor of
    `num_cpus` (and `num_gpus` only for an in-process model); a Qwen or EditScore backend with no
    `model` loads the registry's qwen2_5_vl."""
    resources = Resources(
        num_cpus=float(conf["num_cpus"]),
        num_gpus=float(conf["num_gpus"]) if in_process else 0.0,
        batch_size=int(conf["batch_size"]),
        concurrency=1,
    )
    return resources, (QWEN_FAMILY,) if conf["backend"] in IN_PROCESS_QWEN and not conf.get("model") else ()
