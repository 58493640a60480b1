"""`plan`: how a profile's model stages would sit on the GPUs, from the registry alone (nothing
is loaded): actors, GPU share, and memory per actor against the memory that share provides.
An actor whose need fits its fraction of one GPU fits wherever Ray packs it, since Ray never puts
fractions summing to more than one GPU on a GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.core import models
from filters.model_gates import MODEL_GATES
from pipeline.core.stage import ModelStage
from stages.models.factory import MODEL_STAGES

BYTES_PER_PARAM = {"bfloat16": 2, "float16": 2, "float32": 4}


@dataclass
class StagePlan:
    family: str
    loads: list[str]
    actors: int
    gpus_per_actor: float
    batch_size: int
    weights_gb: float
    activations_gb: float
    need_gb: float  # per actor, with the margin
    have_gb: float  # per actor: its GPU share of one GPU's memory

    @property
    def fits(self) -> bool:
        return self.need_gb <= self.have_gb


def model_stage_classes() -> dict[str, type[ModelStage]]:
    """Every model stage a run can place, by the registry family it is named for."""
    return {**MODEL_STAGES, **MODEL_GATES}


def stages_for(tasks: list[str]) -> list[str]:
    entries = models.registry()
    return [family for family in model_stage_classes() if any(t in entries[family].tasks for t in tasks)]


def plan(cfg: dict[str, Any], tasks: list[str], gpus_per_node: int, gpu_mem_gb: float, nodes: int = 1) -> tuple[list[StagePlan], list[str]]:
    entries = models.registry()
    margin = cfg["gpu"]["activation_margin"]
    rows: list[StagePlan] = []
    classes = model_stage_classes()
    for family in stages_for(tasks):
        params = cfg["model_stages"][classes[family].model.section]
        loads = list(classes[family].model.loads)
        weights = sum(entries[f].params_b * BYTES_PER_PARAM[entries[f].dtype] for f in loads)
        activations = entries[family].activation_gb * params["batch_size"]
        gpus = float(params["num_gpus"])
        rows.append(
            StagePlan(
                family, loads, int(params["concurrency"]), gpus, int(params["batch_size"]), round(weights, 1),
                round(activations, 1), round((weights + activations) * margin, 1), round(gpus * gpu_mem_gb, 1),
            )
        )
    problems = []
    for row in rows:
        if row.gpus_per_actor <= 0:
            problems.append(f"{row.family}: num_gpus is 0 on a GPU plan")
        elif not row.fits:
            problems.append(
                f"{row.family}: needs {row.need_gb} GB per actor but {row.gpus_per_actor:g} of a {gpu_mem_gb:g} GB GPU "
                f"gives {row.have_gb} GB; raise model_stages.{classes[row.family].model.section}.num_gpus or lower its batch_size"
            )
        if row.gpus_per_actor > 1 and row.gpus_per_actor > gpus_per_node:
            problems.append(f"{row.family}: one actor needs {row.gpus_per_actor:g} GPUs, a node has {gpus_per_node}")
    total = sum(r.actors * r.gpus_per_actor for r in rows)
    if total > gpus_per_node * nodes:
        problems.append(
            f"the actor pools need {total:g} GPUs together, the cluster has {gpus_per_node * nodes}: "
            "every model stage must hold its actors at once in one streaming plan"
        )
    return rows, problems


def format_plan(rows: list[StagePlan]) -> str:
    header = f"{'stage':18}{'loads':30}{'actors':>7}{'gpu/actor':>10}{'batch':>6}{'weights':>9}{'activ.':>8}{'need':>8}{'have':>8}  fits"
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.family:18}{'+'.join(r.loads):30}{r.actors:>7}{r.gpus_per_actor:>10g}{r.batch_size:>6}"
            f"{r.weights_gb:>8.1f}G{r.activations_gb:>7.1f}G{r.need_gb:>7.1f}G{r.have_gb:>7.1f}G  {'yes' if r.fits else 'NO'}"
        )
    total = sum(r.actors * r.gpus_per_actor for r in rows)
    lines.append(f"GPUs held by the actor pools: {total:g}")
    return "\n".join(lines)
