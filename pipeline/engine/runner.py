"""The engine's part of `run`: plan the shards, stream every pending one through Ray, commit,
write the manifest; and the summary printed at the end."""

from __future__ import annotations

import contextlib
import json
import resource
import sys
import time
from dataclasses import dataclass
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterator

from pipeline.core import config as config_mod
from pipeline.core.filesystems import redact
from pipeline.core.inputs import iter_records, reach_input
from pipeline.core.integrity import damaged_shards, uncommit
from pipeline.core.model_lock import verify_models
from pipeline.core.models import registry
from pipeline.core.run_dir import PlanMismatch, RunDir, shard_name
from pipeline.core.task_names import ALIAS_OF, TASK_IDS
from pipeline.engine.failures import describe, error_of, os_error_of
from pipeline.engine.manifest import build_manifest, summary_table, write_manifest
from pipeline.engine.plan_stream import BackgroundPlan, ShardFeed
from pipeline.engine.resource_check import NotEnoughResources, check_fits
from pipeline.engine.servers import check_servers
from pipeline.engine.stage_list import build_stage_list
from stages.models.circuit import CircuitOpen
from stages.models.tiny import ensure_tiny


class RunConflict(ValueError):
    """The output folder holds a different run."""


class RunFailed(RuntimeError):
    pass


@dataclass
class RunResult:
    run_dir: Path | str  # a local folder, or the run's URI on a store
    manifest: dict[str, Any]
    stats: dict[str, Any]
    run: RunDir | None = None  # the same, opened with the run's io settings


def default_out(cfg: dict[str, Any]) -> Path:
    tasks = cfg["run"]["tasks"]
    name = "all" if len(tasks) == len(TASK_IDS) else "+".join(ALIAS_OF[t] for t in tasks)
    return Path("runs") / f"{name}-{cfg['profile']}"


LISTING_GRACE_S = 1.0  # how long a run whose Ray is up waits for the listing to end before it overlaps them
AUTO_SHARDS = 64  # what `run.shard_size: auto` aims for: commits spread through the run ...
AUTO_MAX_SHARD = 16  # ... and no more inputs per shard than this
# from this many inputs on, auto is AUTO_MAX_SHARD whatever follows: a streamed plan reads this
# far ahead and no further, and gets the size a full count would give
AUTO_LOOKAHEAD = AUTO_SHARDS * (AUTO_MAX_SHARD - 1) + 1


def shard_size_for(setting: int | str, inputs: int) -> int:
    """A shard commits when all its inputs are done, so the first triplets land after about
    1/shards of the run: auto cuts a run into AUTO_SHARDS shards where it can. A row's content
    does not depend on the shard size."""
    if setting != config_mod.AUTO:
        return int(setting)
    return min(AUTO_MAX_SHARD, max(1, -(-inputs // AUTO_SHARDS)))


def stream_shard_size(setting: int | str, records: Iterator[dict[str, Any]]) -> tuple[int, Iterator[dict[str, Any]]]:
    """The shard size for a stream of records, and the same stream: auto looks at the first
    AUTO_LOOKAHEAD records only (a count of the input would mean listing it twice)."""
    if setting != config_mod.AUTO:
        return int(setting), records
    head = list(islice(records, AUTO_LOOKAHEAD))
    return shard_size_for(setting, len(head)), chain(head, records)


def _check_identity(run: RunDir, cfg: dict[str, Any], found: dict[str, Any]) -> None:
    """A run folder's plan (whole or still being listed) must have been made with this config."""
    identity = config_mod.identity_hash(cfg)
    if found["config_hash"] != identity:
        raise RunConflict(
            f"{run.root} holds a run with other settings (config {found['config_hash']}, this one {identity}); "
            "rerun with the same settings to resume it, or choose another --out"
        )


def _plan(run: RunDir, cfg: dict[str, Any], log) -> dict[str, Any]:
    """The whole plan, listed here to the input's end before anything runs (library use and the
    benchmarks; `run_shards` lists in the background instead, `BackgroundPlan`)."""
    start = time.perf_counter()
    reach_input(cfg["input"], cfg.get("io"))  # an unreachable input leaves no run folder behind
    plan = _list_into_plan(run, cfg)
    log(f"planned {plan['inputs']} inputs in {run.shard_count(plan)} shards ({time.perf_counter() - start:.1f}s)")
    return plan


def _list_into_plan(run: RunDir, cfg: dict[str, Any], resume: bool = False, on_file=None, keep_going=None) -> dict[str, Any]:
    """List the input into the run's plan files; `resume` relists an unfinished plan, checking
    each file against what it wrote before. `on_file(inputs, shard_size)` follows each plan file;
    `keep_going()` runs between records and may raise to stop the listing."""
    records = iter_records(cfg["input"], cfg.get("io"))
    if cfg["run"]["limit"]:
        records = islice(records, cfg["run"]["limit"])
    if keep_going is not None:
        records = _checked(records, keep_going)
    # the input is listed as the plan is written, so nothing holds every record
    shard_size, records = stream_shard_size(cfg["run"]["shard_size"], records)
    meta = {"config_hash": config_mod.identity_hash(cfg), "tasks": cfg["run"]["tasks"], "profile": cfg["profile"], "created_at": time.time()}
    run.store.write("config.yaml", config_mod.dump(_without_credentials(cfg)).encode())
    try:
        return run.write_plan(records, shard_size, meta, None if on_file is None else lambda inputs: on_file(inputs, shard_size), resume)
    except PlanMismatch as exc:
        raise RunConflict(str(exc)) from None


def _checked(records: Iterator[dict[str, Any]], keep_going) -> Iterator[dict[str, Any]]:
    for record in records:
        keep_going()
        yield record


def _without_credentials(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as the run keeps it: a URI's user:password@ part never lands in the run (the
    io settings take no credentials: config.py refuses them)."""
    kept = {**cfg, "input": {**cfg["input"]}, "run": {**cfg["run"]}}
    for section, key in (("input", "path"), ("input", "annotations"), ("run", "out")):
        if isinstance(kept[section].get(key), str):
            kept[section][key] = redact(kept[section][key])
    return kept


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="input", desc="inputs x tasks", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _stream(ds, units, progress: bool, stats: dict[str, Any], started_at: float) -> None:
    """Iterate the writers' progress rows: the bar counts units and shows rows/s. `units` is the
    total, or a function that says it: the total grows while the listing goes on."""
    committed = rows_done = 0
    rows_start = time.perf_counter()
    total = units if callable(units) else (lambda: units)
    with _progress_bar(total(), progress) as bar:
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            bar.total = max(bar.total, total())
            for item in batch.to_pylist():
                rows_done += item["rows"]
                bar.set_postfix(rows=rows_done, rows_per_s=f"{rows_done / max(1e-9, time.perf_counter() - rows_start):.2f}", refresh=False)
                bar.update(item["units"])
                if item["committed"]:
                    committed += 1
                    landed = round(item["committed_at"] - started_at, 2)  # when it landed on disk, not when the driver heard
                    stats["first_commit_s"] = min(stats.get("first_commit_s", landed), landed)
                    if item["candidates"]:
                        stats["first_candidate_s"] = min(stats.get("first_candidate_s", landed), landed)
    stats["shards_committed"] = committed


def ensure_models(cfg: dict[str, Any], stages: list, log) -> None:
    """Tiny twins are built here, once, before any actor wants them; registry weights are
    checked against the model lock here, before any actor loads them."""
    families = sorted({family for stage in stages for family in stage.loads})
    ensure_tiny(cfg, families, log=log)
    entries = registry()
    verify_models(cfg, {family: entries[family].ref for family in families}, log=log)


def run_shards(cfg: dict[str, Any], log=print, task_stages: list | None = None, check: bool = False) -> RunResult:
    """Run (or resume) the configured tasks until every shard is committed and the manifest is
    written. `task_stages` replaces the recipes' stages, for library use and tests that run a
    chain of their own. The post-run phases (selection, report) are `pipeline.postrun.finish`.

    A new plan is listed in a background thread while Ray starts; a listing that outlasts Ray's
    start runs the shards of each plan file as it lands (`plan_stream.py`, `shard_tickets.py`)."""
    t0, started_at = time.perf_counter(), time.time()
    stages = build_stage_list(cfg, task_stages)
    ensure_models(cfg, stages, log)
    run = RunDir(cfg["run"]["out"] or default_out(cfg), cfg.get("io"))
    run.store.check_reachable()  # an out store without credentials: exit 2 before anything starts
    existing = run.read_plan()
    unfinished = None if existing is not None else run.plan_identity()  # a listing that was killed
    resuming = existing is not None or unfinished is not None
    if not resuming:
        check_servers(cfg)  # a wrong judge or captioner URL leaves no run folder behind
    plan_start = time.perf_counter()
    if resuming:  # a whole plan, or one whose listing was killed, made with this config
        _check_identity(run, cfg, existing or unfinished)
    plan = existing
    damaged = _uncommit_damaged(run, check, log) if resuming else []
    if resuming:
        _remove_orphans(run, log)
    background = None
    if plan is None:
        reach_input(cfg["input"], cfg.get("io"))  # an unreachable input leaves no run folder behind
        background = BackgroundPlan(partial(_list_into_plan, run, cfg, unfinished is not None)).start()
    try:
        if background is not None:
            background.wait(0)  # the first plan file, or the end of a short listing (or its error)
            if background.finished:
                plan = _planned(run, background, log)
        pending = run.pending_shards(plan) if plan is not None else None
        stats: dict[str, Any] = {"started_at": time.time(), "stages_ran": pending is None or bool(pending)}
        stats["damaged_shards"] = damaged
        if pending is not None:
            stats["pending_shards_at_start"] = len(pending)
            stats["plan_s"] = round(time.perf_counter() - plan_start, 2)
        if pending and existing is not None:
            # a resumed run lists nothing, but its workers will read the input: an unreachable store
            # or missing credentials stop it here, not as an error row per input
            reach_input(cfg["input"], cfg.get("io"))
        if resuming and (pending is None or pending):
            check_servers(cfg)
        if pending is None or pending:
            _run_on_ray(run, cfg, stages, pending, background, stats, t0, started_at, log)
        if background is not None:
            plan = plan or _planned(run, background, log)
            stats["plan_s"], stats["plan_done_s"] = background.seconds, round(background.ended_at - started_at, 2)
    except BaseException:
        if background is not None:
            background.cancel()  # no plan file is written after the run stopped
        raise
    assert plan is not None

    manifest = build_manifest(run, plan)
    write_manifest(run, manifest)
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    write_stats(run, stats)
    if not manifest["complete"]:
        raise RunFailed(
            f"{len(manifest['pending_shards'])} shard(s) did not commit: {manifest['pending_shards'][:10]}; "
            "rerun the same command to finish them"
        )
    return RunResult(run.root, manifest, stats, run)


def _planned(run: RunDir, background: BackgroundPlan, log) -> dict[str, Any]:
    plan = background.result()
    log(f"planned {plan['inputs']} inputs in {run.shard_count(plan)} shards ({background.seconds:.1f}s)")
    return plan


def _run_on_ray(run: RunDir, cfg: dict[str, Any], stages: list, pending: dict[int, int] | None, background: BackgroundPlan | None,
                stats: dict[str, Any], t0: float, started_at: float, log) -> None:
    """Stream the shards through Ray: `pending` when the plan is whole, else the shards of each
    plan file `background` writes, as it writes them."""
    from pipeline.engine.group_actors import start_group_actors
    from pipeline.engine.ray_plan import build_dataset, start_writers, tell_writers
    from pipeline.engine.ray_runtime import init_ray, quiet_ray_data
    from pipeline.engine.shard_tickets import start_planned_shards, ticket_dataset
    from pipeline.engine.stale_ray import record_session, stop_stale_session

    tasks = len(cfg["run"]["tasks"])
    if stop_stale_session(run):  # an earlier invocation's Ray that outlived its driver and watchdog
        log("warning: stopped what was left of this run's earlier embedded Ray")
    stats["ray"] = init_ray(cfg["ray"]["address"], cfg["ray"]["num_cpus"])
    if stats["ray"].get("session_dir"):
        record_session(run, stats["ray"]["session_dir"])
    quiet_ray_data()
    import ray

    try:
        free_cpus = check_fits(stages, ray.cluster_resources())
    except NotEnoughResources as exc:
        raise RunFailed(str(exc)) from None
    stats["ray_ready_s"] = round(time.perf_counter() - t0, 2)
    # a listing that ends while Ray starts (or soon after) is run as one whole plan: a small run
    # gets no ticket tasks
    if pending is None and background.finish_within(LISTING_GRACE_S):
        pending = run.pending_shards(background.result())
        stats["pending_shards_at_start"] = len(pending)
        if not pending:
            return
    stats["plan_overlapped"] = pending is None
    units = {} if pending is None else {shard: inputs * tasks for shard, inputs in pending.items()}
    writers = start_writers(run, units, stages[-1].resources.concurrency, stages[-1].resources.num_cpus)
    group_actors = start_group_actors(stages)
    feed = None
    try:
        if pending is None:
            planned = start_planned_shards()
            committed = run.committed_shards()
            feed = ShardFeed(background, partial(tell_writers, writers), planned, committed, tasks).start()
            shards, total = ticket_dataset(planned, committed), (lambda: feed.units)
        else:
            shards, total = sorted(units), sum(units.values())
        ds = build_dataset(run, shards, stages, writers, free_cpus, group_actors)
        _stream(ds, total, cfg["run"]["progress"], stats, started_at)
        if feed is not None:
            feed.join()
    except Exception as exc:  # a write that failed (disk full, permission, folder gone): one line, not a traceback
        circuit = error_of(exc, CircuitOpen)  # a served model that stopped answering: the same
        error = os_error_of(exc)
        if circuit is None and error is None:
            raise
        _record_failure(run, background.plan if background is not None else run.read_plan(), stats, t0)
        cause = _circuit_line(circuit) if circuit is not None else describe(error)
        raise RunFailed(f"{cause}; committed shards are kept, rerun the same command once it is fixed") from None
    finally:
        # the plan keeps handles to them: they would hold their CPUs on a shared Ray
        for actor in [*writers, *(a for pool in group_actors.values() for a in pool)]:
            ray.kill(actor)


def _record_failure(run: RunDir, plan: dict[str, Any] | None, stats: dict[str, Any], t0: float) -> None:
    """The manifest (complete: false; none while the plan is unfinished) and the run stats,
    where the run folder still takes them."""
    with contextlib.suppress(OSError):
        if not run.plan_started():  # the folder vanished: writing would recreate a stray one
            return
    stats["seconds"] = round(time.perf_counter() - t0, 2)
    with contextlib.suppress(OSError):
        if plan is not None:
            write_manifest(run, build_manifest(run, plan))
    with contextlib.suppress(OSError):
        write_stats(run, stats)


def _circuit_line(exc: BaseException) -> str:
    # Ray's wrapper prefixes a traceback; the breaker's own message is its last line
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return next((line.strip() for line in reversed(lines) if "circuit open" in line), lines[-1] if lines else "circuit open")


def _uncommit_damaged(run: RunDir, full: bool, log) -> list[int]:
    """A committed shard whose files differ from its record (size and footer; every byte with
    `full`) is made pending again, so this run regenerates it."""
    damaged = damaged_shards(run, full)
    for shard, problems in damaged.items():
        log(f"warning: {shard_name(shard)} is damaged ({'; '.join(problems)}): regenerating it")
        uncommit(run, shard)
    return sorted(damaged)


def _remove_orphans(run: RunDir, log) -> None:
    """Shard files no completion record names (an attempt killed before its record was written)
    are never read; removing them keeps the folder to what counts."""
    orphans = run.orphan_files()
    for rel in orphans:
        run.store.remove(rel)
    if orphans:
        log(f"removed {len(orphans)} file(s) of unfinished shard attempts")


def write_stats(run: RunDir | Path | str, stats: dict[str, Any]) -> None:
    # ru_maxrss is KiB on Linux: this driver process alone, not Ray's workers
    stats["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    RunDir(run).store.write("stats/run.json", json.dumps(stats, indent=1).encode())


def print_summary(result: RunResult, log=print) -> None:
    log(summary_table(result.manifest))
    log("stage s: each row's share of its stages' wall time, summed over workers; cpu s: their CPU time")
    rows = result.manifest["rows"]
    stats = result.stats
    if not stats["stages_ran"]:
        log("every shard was already committed: nothing to do")
    log(
        f"{rows['ok'] + rows['rejected']} candidates ({rows['ok']} ok, {rows['rejected']} rejected), "
        f"{rows['skipped']} skipped, {rows['error']} errors in {stats['seconds']:.1f}s"
        + (f"; first candidate after {stats['first_candidate_s']:.1f}s" if "first_candidate_s" in stats else "")
    )
    root = str(result.run_dir).rstrip("/")
    log(f"triplets: {root}/candidates   errors: {root}/errors   manifest: {root}/manifest.json")
