"""The pool plan printed: one line per pool, then the totals, the bottleneck, the expected
candidates, the packing and the plan's notes (`python -m pipeline plan`)."""

from __future__ import annotations

from pipeline.core.task_names import ALIAS_OF
from pipeline.engine.pool_sizing import Pool, PoolPlan


def _tasks(p: Pool) -> str:
    return "all" if p.tasks is None else ",".join(ALIAS_OF.get(t, t) for t in p.tasks)


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "?"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def format_plan(plan: PoolPlan) -> str:
    w = max(len("pool"), *(len(p.label) for p in plan.pools)) + 2 if plan.pools else 6
    tw = min(28, max(len("tasks"), *(len(_tasks(p)) for p in plan.pools)) + 2) if plan.pools else 7
    lw = max(24, *(len("+".join(p.loads)) + 2 for p in plan.pools)) if plan.pools else 24
    header = (
        f"{'pool':{w}}{'tasks':{tw}}{'loads':{lw}}{'actors':>6}{'gpu/actor':>10}{'GPUs':>6}{'need':>8}{'have':>8}  fits"
        f"{'rows/in':>8}{'GPU-s/row':>10}{'GPU-s/in':>9}{'rows/s':>8}{'busy':>6}"
    )
    lines = [header, "-" * len(header)]
    rate = plan.rate
    for p in plan.pools:
        tasks = _tasks(p)
        tasks = tasks if len(tasks) <= tw - 2 else tasks[: tw - 4] + ".."
        need = "?" if p.need_gb is None else f"{p.need_gb:.1f}G"
        busy = f"{rate * p.work / p.gpus:.0%}" if p.gpus > 0 and p.work > 0 else "-"
        lines.append(
            f"{p.label:{w}}{tasks:{tw}}{'+'.join(p.loads):{lw}}{p.actors:>6}{p.share:>10g}{round(p.gpus, 2):>6g}{need:>8}{p.have_gb:>7.1f}G  {'yes ' if p.fits else 'NO  '}"
            f"{_num(p.rows):>8}{_num(p.seconds_per_row):>10}{_num(p.work):>9}{_num(rate * p.rows):>8}{busy:>6}"
        )
    held = plan.held
    cpus = sum(p.actors * p.num_cpus for p in plan.pools)
    lines.append(f"GPUs held by the actor pools: {held:.2f} of {plan.total_gpus} ({held / plan.total_gpus:.0%}); CPUs held: {cpus:g}" if plan.total_gpus else f"GPUs held by the actor pools: {held:g}")
    neck = plan.bottleneck
    if neck is not None:
        lines.append(
            f"bottleneck: {neck.label} ({_tasks(neck)}): {neck.actors} actor(s), {neck.gpus:g} GPUs for {_num(neck.work)} GPU-s per input "
            f"-> {rate * 3600:,.0f} inputs/h"
        )
        lines.append(
            f"expected candidates per hour: {plan.candidates_per_hour:,.0f} ({_num(plan.candidates_per_input)} per input, an upper bound: "
            "every input yields the configured maximum)"
        )
        per = []
        for t in plan.tasks:
            value = plan.gpu_seconds_per_candidate(t)
            if plan.input_share[t] == 0:
                per.append(f"{t} {_num(value)} (no inputs reach it: gpu.video_share is 0)")
            else:
                per.append(f"{t} {_num(value)}")
        lines.append("GPU-seconds per candidate (work, whole-GPU seconds): " + ", ".join(per))
        all_in = plan.total_gpus / (rate * plan.candidates_per_input) if rate and plan.candidates_per_input else None
        lines.append(f"cluster GPU-seconds per candidate, idle time included: {_num(all_in)}")
        lines.append(f"idle GPU share: {plan.idle_share:.0%} (held by pools waiting on the bottleneck, or by none)")
    if plan.packing and plan.total_gpus <= 16:
        lines.append("packing (one line per GPU):")
        for g, held_here in enumerate(plan.packing):
            content = " + ".join(f"{label} {share:g}" if share < 1 else label for label, share in held_here) or "(empty)"
            lines.append(f"  gpu {g // plan.gpus_per_node}.{g % plan.gpus_per_node}: {content}")
    if plan.pairwise:
        lines.append(pairwise_line(plan))
    for note in plan.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def pairwise_line(plan: PoolPlan) -> str:
    """Best of N's cost in judge calls: per task and per input in all, and per hour at the plan's rate."""
    parts = [
        f"{ALIAS_OF.get(t, t)} {n} seeds x {_num(edits)} edits: {n * (n - 1)} calls per edit, {_num(calls)} per input"
        for t, (edits, n, calls) in plan.pairwise.items()
    ]
    per_input = sum(plan.input_share.get(t, 1.0) * calls for t, (_, _, calls) in plan.pairwise.items())
    hourly = f", about {plan.rate * per_input * 3600:,.0f} per hour at the plan's rate" if plan.rate else ""
    return f"pairwise judge calls (best of N, every pair in both orders; an upper bound): {'; '.join(parts)}; {_num(per_input)} per input{hourly}"
