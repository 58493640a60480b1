"""The stage contract: a small class, sized where it is declared, testable without Ray."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

Row = dict[str, Any]


class StopRun(RuntimeError):
    """Not one row's failure but the run's (a served model that is down): the stage runner lets
    it through instead of turning it into error rows, and the run ends with exit 1."""


@dataclass(frozen=True)
class Resources:
    num_cpus: float = 0.25  # fractions let light stages share a core
    num_gpus: float = 0.0
    batch_size: int = 4
    concurrency: int = 1  # actors in the pool, for model stages


class Stage:
    """One operation on rows. `setup` loads what is expensive once per worker; `process_batch`
    maps rows to rows. A stage raises on a row it cannot handle; the runner turns that into an
    `error` row and keeps the rest of the batch."""

    name: str = "stage"
    resources: Resources = Resources()
    uses_model: bool = False  # run as a fixed-size actor pool that keeps its model loaded
    fans_out: bool = False  # one row in, any number out: the task's proposal step
    tasks: tuple[str, ...] | None = None  # rows of these tasks only; None: every task
    # rows in these states reach the stage; gates and judges after a task's own gate also see
    # rows that already have a verdict
    accepts: tuple[str, ...] = ("pending",)
    loads: tuple[str, ...] = ()  # registry families whose weights it loads (tiny twins are built first)
    # two tasks' stages with equal keys (same model, settings and weights) run as one actor pool
    share_key: tuple | None = None
    # the row fields it reads and writes, named as in pipeline/core/fields.py ("mask", "work.selected",
    # "blob.mask:*"; a read ending in "?" is used only when present); tests/test_row_fields.py
    # checks that every read has an earlier writer in each recipe
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def setup(self) -> None:
        pass

    def process_batch(self, rows: list[Row]) -> list[Row]:
        out: list[Row] = []
        for row in rows:
            result = self.process_row(row)
            out.extend(result if isinstance(result, list) else [result])
        return out

    def process_row(self, row: Row) -> Row | list[Row]:
        raise NotImplementedError(f"{type(self).__name__} implements neither process_batch nor process_row")

    def merged_with(self, other: Stage) -> Stage:
        """This stage serving `other`'s rows too (two tasks' stages with equal `share_key`): a copy
        with the union of their tasks. A stage whose merge combines more than tasks (the SD3.5
        ControlNets: one base, a ControlNet per task) extends it; neither stage is changed."""
        shared = copy.copy(self)
        if self.tasks is None or other.tasks is None:
            shared.tasks = None
        else:
            shared.tasks = tuple(sorted(set(self.tasks) | set(other.tasks)))
        return shared

    def with_resources(self, resources: Resources) -> Stage:
        """A copy of this stage sized otherwise (the plan's pools); the stage itself is left as it was."""
        sized = copy.copy(self)
        sized.resources = resources
        return sized


def resources_from(params: dict[str, Any]) -> Resources:
    """A model stage's size, from its `model_stages.<section>` block."""
    return Resources(
        num_cpus=float(params["num_cpus"]),
        num_gpus=float(params["num_gpus"]),
        batch_size=int(params["batch_size"]),
        concurrency=int(params["concurrency"]),
    )


@dataclass(frozen=True)
class ModelUse:
    """What a model stage loads and where its settings live, declared once on its class."""

    family: str  # the registry key (configs/models.yaml) it is named for
    section: str  # `model_stages.<section>` sizes it and holds its settings
    extra_loads: tuple[str, ...] = ()  # other registry families it loads (a ControlNet's base)

    @property
    def loads(self) -> tuple[str, ...]:
        return (*self.extra_loads, self.family)


class ModelStage(Stage):
    """A stage that loads registry weights, run as a fixed-size actor pool. A subclass declares
    `model` and builds itself from the config with `from_config`: its resources come from the
    config's section only, its weights from the registry (or the tiny twin, or an override)."""

    uses_model = True
    model: ClassVar[ModelUse]

    @property
    def loads(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.model.loads

    def family_of_task(self, task: str) -> str:
        """The registry family that does this task's rows' work here (the plan costs them by it):
        the class's own, unless a stage holds weights per task (the shared SD3.5 ControlNets)."""
        return self.model.family

    @classmethod
    def from_config(cls, cfg: dict[str, Any], tasks: tuple[str, ...] | None) -> "ModelStage":
        from pipeline.core import models

        params = cfg["model_stages"][cls.model.section]
        refs = {family: models.resolve(cfg, family) for family in cls.model.loads}
        stage = cls.from_settings(cfg, params, refs, tasks)
        stage.resources = resources_from(params)
        stage.share_key = (cls.__qualname__, tuple(sorted(params.items())), tuple(refs[f] for f in cls.model.loads))
        return stage

    @classmethod
    def from_settings(
        cls, cfg: dict[str, Any], params: dict[str, Any], refs: dict[str, tuple[str, str | None]], tasks: tuple[str, ...] | None
    ) -> "ModelStage":
        """The stage for these settings; `refs[family]` is (ref, revision) for each family it loads."""
        raise NotImplementedError(f"{cls.__name__} does not say how it is built from the config")
