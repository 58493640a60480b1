"""Refuse a plan the cluster cannot hold: actor pools are placed all at once, and a pool that
cannot be placed makes a streaming plan wait for ever instead of failing."""

from __future__ import annotations

from pipeline.core.stage import Stage
from pipeline.engine.engine_stages import WriteShards


class NotEnoughResources(RuntimeError):
    pass


def check_fits(stages: list[Stage], cluster: dict[str, float]) -> float:
    """`stages` is the run's whole list: model stages hold actor pools and the shard writers are actors,
    the rest run as tasks. Returns the CPUs left for those tasks."""
    writer_cpus = sum(s.resources.num_cpus * s.resources.concurrency for s in stages if isinstance(s, WriteShards))
    # model stages and the stages whose rows meet in actors (best of N's pairwise judge) hold pools
    pools = [s for s in stages if s.uses_model or getattr(s, "group_phase", None) == "gather"]
    cpus = sum(s.resources.num_cpus * s.resources.concurrency for s in pools) + writer_cpus
    # the light stages run as tasks (decode, the recipes' classical steps, PNG encode) and need room
    # for at least one of them, or the plan waits for ever; they get all the CPUs left (light_task_cpus)
    task_cpus = max((s.resources.num_cpus for s in stages if s not in pools and not isinstance(s, WriteShards) and not getattr(s, "group_phase", None)), default=0.0)
    gpus = sum(s.resources.num_gpus * s.resources.concurrency for s in pools)
    have_cpus, have_gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    if cpus + task_cpus > have_cpus:
        detail = ", ".join(f"{s.name} {s.resources.concurrency}x{s.resources.num_cpus:g}" for s in pools)
        raise NotEnoughResources(
            f"the actor pools ({detail}) and the shard writers ({writer_cpus:g}) hold {cpus:g} CPUs and the light stages "
            f"need {task_cpus:g} more, but the cluster has {have_cpus:g}; lower model_stages.*.num_cpus or concurrency"
        )
    if gpus > have_gpus:
        raise NotEnoughResources(
            f"the model stages need {gpus:g} GPUs, the cluster has {have_gpus:g}; use a GPU cluster, "
            "the tiny profile, or lower model_stages.*.num_gpus"
        )
    return have_cpus - cpus
