"""The pool sizer: the plan's pools and their numbers (Pool, PoolPlan), each actor's GPU share,
the pools grown one actor at a time, and the actors packed onto the GPUs.

Throughput model: an actor holding a share f of a GPU processes f / cost rows per second (a
conservative model for the small models, which rarely keep a GPU busy). The run moves at the
pace of its slowest pool (the bottleneck): inputs per second = min over pools of GPUs held /
work per input.

Sizing (auto_pools): each actor's share is its memory need as a share of one GPU, rounded up to
`gpu.share_step`; an actor needing more than half a GPU takes a whole one. Every pool starts
with one actor. Then, one actor at a time, the pool with the lowest throughput that still has
room gets another, so the GPUs end up in proportion to each pool's work, in whole actors. When
the bottleneck cannot grow (no whole GPU left, say), the rest goes to the next-slowest pools:
headroom where the traffic estimate is off. Actors are packed onto GPUs first-fit, the largest
first, the way fractional shares must sit (never more than one GPU's worth on a GPU, an actor
never across two). Ray places the actors itself; the packing shows that they fit. Without
auto_pools each pool keeps its configured size, and the plan says what does not fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.engine.plan_tables import Cost

MILLI = 1000  # GPU shares are packed in thousandths of a GPU (Ray keeps four decimals)


@dataclass
class Pool:
    index: int  # in the stage list
    label: str
    key: str  # in the cost table
    loads: tuple[str, ...]
    tasks: tuple[str, ...] | None
    setting: str  # where its size is configured
    batch_size: int
    num_cpus: float
    config_actors: int
    config_share: float
    weights_gb: float | None  # None: weights the registry does not know (a judge's own model)
    activations_gb: float | None
    need_gb: float | None  # per actor, with the margin
    cost: Cost | None
    seconds_per_row: float | None  # the cost at this config's steps
    rows_by_task: dict[str, float]  # rows of one input of the task
    rows: float = 0.0  # per input of the run (tasks weighted by the inputs that reach them)
    actors: int = 1
    share: float = 0.0
    have_gb: float = 0.0
    costs: dict[str, Cost] = field(default_factory=dict)  # by cost-table key; two where tasks use different weights
    seconds_by_task: dict[str, float] = field(default_factory=dict)  # each task's rows' cost; else seconds_per_row

    @property
    def gpus(self) -> float:
        return self.actors * self.share

    @property
    def work(self) -> float:
        """GPU-seconds per input of the run."""
        return (self.seconds_per_row or 0.0) * self.rows

    @property
    def capacity(self) -> float:
        """Inputs per second this pool keeps up with."""
        return self.gpus / self.work if self.work > 0 else math.inf

    @property
    def fits(self) -> bool:
        return self.need_gb is None or self.need_gb <= self.have_gb + 1e-9


@dataclass
class PoolPlan:
    pools: list[Pool]
    nodes: int
    gpus_per_node: int
    gpu_mem_gb: float
    auto: bool
    tasks: list[str]
    input_share: dict[str, float]  # of the inputs, the share that reaches each task
    candidates: dict[str, float]  # per input of the task
    video_share: float
    cost_working_size: int | None
    working_size: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    packing: list[list[tuple[str, float]]] = field(default_factory=list)  # per GPU: (pool, share)
    pairwise: dict[str, tuple[float, int, float]] = field(default_factory=dict)  # best of N: task -> (edits/input, N, judge calls/input)

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def held(self) -> float:
        return sum(p.gpus for p in self.pools)

    @property
    def busy_pools(self) -> list[Pool]:
        return [p for p in self.pools if p.work > 0]

    @property
    def bottleneck(self) -> Pool | None:
        busy = self.busy_pools
        return min(busy, key=lambda p: p.capacity) if busy else None

    @property
    def rate(self) -> float:
        """Inputs per second of the whole run."""
        neck = self.bottleneck
        return neck.capacity if neck else 0.0

    @property
    def candidates_per_input(self) -> float:
        return sum(self.input_share[t] * self.candidates[t] for t in self.tasks)

    @property
    def candidates_per_hour(self) -> float:
        return self.rate * 3600 * self.candidates_per_input

    @property
    def idle_share(self) -> float:
        """Of the cluster's GPUs, the share that does no work at the planned pace: held by a pool
        that waits on the bottleneck, or held by none."""
        work = sum(p.work for p in self.pools)
        return 1.0 - self.rate * work / self.total_gpus if self.total_gpus else 0.0

    def gpu_seconds_per_candidate(self, task: str) -> float | None:
        """The GPU work (whole-GPU seconds) one of the task's candidates costs across the pools."""
        if not self.candidates.get(task):
            return None
        work = sum(p.seconds_by_task.get(task, p.seconds_per_row or 0.0) * p.rows_by_task.get(task, 0.0) for p in self.pools)
        return work / self.candidates[task]


def auto_share(need_gb: float | None, gpu_mem_gb: float, step: float, fallback: float) -> float:
    """The smallest share on the `step` grid whose memory holds `need_gb`; above half a GPU, the
    whole GPU (two would not fit, and the rest is worth more whole)."""
    if need_gb is None:
        return fallback
    steps = math.ceil(need_gb / gpu_mem_gb / step - 1e-9)
    share = round(max(1, steps) * step, 4)
    return 1.0 if share > 0.5 else share


class _Packer:
    """GPUs as thousandths free; an actor goes onto the first GPU with room."""

    def __init__(self, gpus: int):
        self.free = [MILLI] * gpus
        self.held: list[list[tuple[int, int]]] = [[] for _ in range(gpus)]

    def place(self, pool: int, share: float) -> bool:
        size = max(1, round(share * MILLI))
        for gpu, free in enumerate(self.free):
            if free >= size:
                self.free[gpu] -= size
                self.held[gpu].append((pool, size))
                return True
        return False


def size_pools(shares: list[float], work: list[float], gpus: int) -> tuple[list[int], list[list[tuple[int, int]]]] | None:
    """Actors per pool, and the packing (per GPU: (pool, thousandths)). One actor each first, the
    largest shares first; then one more actor at a time to the pool with the lowest throughput
    (GPUs held / work) that still has room, until none has. None: one actor each does not fit."""
    packer = _Packer(gpus)
    actors = [0] * len(shares)
    for i in sorted(range(len(shares)), key=lambda i: -shares[i]):
        if not packer.place(i, shares[i]):
            return None
        actors[i] = 1
    open_pools = {i for i in range(len(shares)) if work[i] > 0}
    while open_pools:
        i = min(open_pools, key=lambda i: (actors[i] * shares[i] / work[i], -work[i], i))
        if packer.place(i, shares[i]):
            actors[i] += 1
        else:
            open_pools.discard(i)  # free room only shrinks: it will not fit later either
    return actors, packer.held


def size_fixed(plan: PoolPlan) -> None:
    """Each pool as configured: `concurrency` actors of `num_gpus`."""
    for p in plan.pools:
        p.actors, p.share = p.config_actors, p.config_share
        p.have_gb = round(p.share * plan.gpu_mem_gb, 1)
        if p.share <= 0:
            plan.problems.append(f"{p.label}: num_gpus is 0 on a GPU plan")
        elif not p.fits and p.need_gb is not None and p.need_gb <= plan.gpu_mem_gb:
            plan.problems.append(
                f"{p.label}: needs {p.need_gb} GB per actor but {p.share:g} of a {plan.gpu_mem_gb:g} GB GPU "
                f"gives {p.have_gb} GB; raise {p.setting}.num_gpus or lower its batch_size"
            )
        if p.share > 1 and p.share > plan.gpus_per_node:
            plan.problems.append(f"{p.label}: one actor needs {p.share:g} GPUs, a node has {plan.gpus_per_node}")
    if plan.held > plan.total_gpus + 1e-9:
        plan.problems.append(
            f"the actor pools need {plan.held:g} GPUs together, the cluster has {plan.total_gpus}: "
            "every model stage must hold its actors at once in one streaming plan"
        )


def size_auto(plan: PoolPlan, step: float) -> None:
    """Shares from memory, actors from the work; a pool with no cost keeps its configured size."""
    for p in plan.pools:
        if p.cost is None:
            p.actors, p.share = p.config_actors, p.config_share
        else:
            p.share = auto_share(p.need_gb, plan.gpu_mem_gb, step, p.config_share)
        p.have_gb = round(p.share * plan.gpu_mem_gb, 1)
    sized = [p for p in plan.pools if p.cost is not None]
    kept = [p for p in plan.pools if p.cost is None for _ in range(p.actors)]  # one item per actor, never grown
    result = size_pools([p.share for p in sized + kept], [p.work for p in sized] + [0.0] * len(kept), plan.total_gpus)
    if result is None:
        plan.problems.append(
            f"one actor per pool needs {sum(p.share for p in sized + kept):g} GPUs "
            f"({', '.join(f'{p.label} {p.share:g}' for p in plan.pools)}), the cluster has {plan.total_gpus}: "
            "every model stage must hold its actors at once in one streaming plan"
        )
        for p in sized:
            p.actors = 1
        return
    actors, held = result
    for p, n in zip(sized, actors):
        p.actors = n
    owners = [p.label for p in sized + kept]
    plan.packing = [[(owners[i], size / MILLI) for i, size in gpu] for gpu in held]
