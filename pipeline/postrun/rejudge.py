"""`rejudge`: the judge run again over a finished run's committed candidates, into the judge
overlay (pipeline/postrun/judge_overlay.py), then the selection again. A run whose judge was
wrong or down is judged anew without regenerating anything; its shards are never rewritten.

Shard by shard, in this process (the judge is one stage: a served judge's concurrency lives in
its client, an in-process Qwen is one model), each shard's overlay committed as the shard writer
commits: the Parquet file, then its record, both by atomic_write. An interrupted rejudge resumes
at the first shard without a record. Each judge gets its own overlay, made active (and the
others removed) only once it covers every shard: until then selection reads what it read before.
The server is probed first and the circuit breaker applies, as in `run`. The run is local or on a
store: candidates are read and the overlay written through its store (each file whole: an
atomic rename locally, one PUT on a store)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from filters.judge.policy import unscored
from filters.judge.stage import JudgeStage, make_judge_stage
from filters.viescore import PROMPT_HASH
from pipeline.core import schema
from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.engine.runner import ensure_models
from pipeline.engine.servers import check_servers
from pipeline.engine.stage_runner import run_stage
from pipeline.postrun.judge_overlay import (
    OVERLAY_DIR,
    OVERLAY_SCHEMA,
    JudgeOverlay,
    active_file,
    committed_candidates,
    counts,
    info_file,
    load_overlay,
    read_json,
    read_overlay,
    record_file,
    shard_file,
)

# what the judge reads from a candidate row, and what its stage records into
READ_COLUMNS = ["sample_id", "task", "status", "reason", "source_image", "target_image", "instruction_en", "scores", "judge", "provenance"]
# judge keys that say how to reach or pace the judge, not what it answers: a rejudge that
# changes only these (another host serving the same model) keeps the shards already re-judged
PACING_KEYS = ("url", "api_key_env", "timeout_s", "retries", "backoff_s", "max_consecutive_failures",
               "concurrency", "batch_size", "num_cpus", "num_gpus")


class RejudgeError(ValueError):
    """The command cannot start: not a run folder, or no judge configured."""


def overlay_identity(judge_conf: dict[str, Any], tasks: list[str] | None, base: str | None = None) -> dict[str, Any]:
    """Which judgements the overlay holds; `identity` is its hash. A rejudge of some tasks builds
    on the overlay in use (`base`): its other tasks' rows keep what that one says."""
    what = {
        "judge": {k: v for k, v in sorted(judge_conf.items()) if k not in PACING_KEYS},
        "prompt_hash": PROMPT_HASH,
        "tasks": sorted(tasks) if tasks else None,
        "base": base,
    }
    return {**what, "identity": hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]}


def start_overlay(run: RunDir, info: dict[str, Any]) -> None:
    """This judge's overlay folder with its overlay.json (kept when resuming)."""
    if read_json(info_file(run, info["identity"])) is None:
        atomic_write(info_file(run, info["identity"]), json.dumps({**info, "started_at": time.time()}, indent=1).encode())


def activate(run: RunDir, identity: str) -> None:
    """Readers switch to this overlay in one write (a rename, or one PUT on a store); the other
    overlays go afterwards."""
    atomic_write(active_file(run), json.dumps({"identity": identity, "activated_at": time.time()}).encode())
    others = {rel.split("/")[2] for rel in run.store.walk(OVERLAY_DIR) if rel.count("/") >= 3} - {identity}  # overlays/judge/<identity>/...
    for other in sorted(others):
        run.store.remove_folder(f"{OVERLAY_DIR}/{other}")


def judge_shard(run: RunDir, candidate: str, candidate_sha: str, stage: JudgeStage, identity: str,
                tasks: list[str] | None, base: JudgeOverlay | None = None) -> Counter:
    """Re-judge one candidate shard (the rows of `tasks`; the others keep the base overlay's
    entries) and commit its overlay; returns the judge states it wrote."""
    states: Counter = Counter()
    ids, judges, viescores = [], [], []
    kept = base.entries(run.store.file(candidate)) if base is not None else {}
    with run.store.open(candidate) as handle:
        source = pq.ParquetFile(handle, buffer_size=1 << 20)
        for batch in source.iter_batches(batch_size=max(1, stage.resources.batch_size), columns=READ_COLUMNS):
            rows = batch.to_pylist()
            for row in rows:
                if tasks is not None and row["task"] not in tasks and row["sample_id"] in kept:
                    ids.append(row["sample_id"])
                    judges.append(kept[row["sample_id"]][0])
                    viescores.append(kept[row["sample_id"]][1])
            for row in run_stage(stage, [row for row in rows if tasks is None or row["task"] in tasks]):
                if row["status"] in schema.CANDIDATE_STATUSES:
                    judge, viescore = schema.loads(row["judge"]), schema.loads(row["scores"]).get("viescore")
                else:  # the stage crashed on the row: the judge has no score for it; its status stays the run's
                    judge, viescore = unscored(row.get("reason") or "the judge failed on this row", stage.judge.settings()), None
                judge["overlay"] = f"{OVERLAY_DIR}/{identity}"  # where this judgement lives, beside the shard
                states[judge.get("state") or "none"] += 1
                ids.append(row["sample_id"])
                judges.append(schema.dumps(judge))
                viescores.append(schema.dumps(viescore) if viescore else None)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table([ids, judges, viescores], schema=OVERLAY_SCHEMA), sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    out = shard_file(run, identity, Path(candidate))
    atomic_write(out, data)
    record = {
        "identity": identity,
        "source": {"path": candidate, "sha256": candidate_sha},
        "file": {"path": run.store.rel_of(out), "rows": len(ids), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        "states": dict(states),
        "committed_at": time.time(),
    }
    atomic_write(record_file(run, identity, Path(candidate)), json.dumps(record, indent=1).encode())  # the commit: last
    return states


def rejudge_run(run_dir: Path, cfg: dict[str, Any], tasks: list[str] | None = None, log: Callable[[str], None] = print,
                select: bool = True) -> dict[str, Any]:
    """Re-judge every committed candidate shard that the overlay does not cover yet, then (with
    `select`) select again and rewrite the report where the run writes one."""
    run = RunDir(run_dir)
    if run.read_plan() is None:
        raise RejudgeError(f"{run.root} is not a run folder (no plan/plan.json)")
    stage = make_judge_stage(cfg)
    if stage.judge is None:
        raise RejudgeError("rejudge needs a judge: --judge-url URL --judge-model NAME, or --set judge.backend=qwen")
    check_servers(cfg, ("judge",))  # a wrong URL or model exits 2 before any row is read
    ensure_models(cfg, [stage], log)
    base = load_overlay(run) if tasks else None  # judging some tasks again changes only theirs
    info = overlay_identity(cfg["judge"], tasks, base.info["identity"] if base else None)
    identity = info["identity"]
    start_overlay(run, info)
    candidates = committed_candidates(run)
    summary: dict[str, Any] = {"shards": len(candidates), "rejudged": 0, "already_done": 0, "states": Counter()}
    stage.setup()
    for candidate, sha in sorted(candidates.items()):
        if counts(run, read_json(record_file(run, identity, Path(candidate))), identity, sha):
            summary["already_done"] += 1
            continue
        states = judge_shard(run, candidate, sha, stage, identity, tasks, base)
        summary["rejudged"] += 1
        summary["states"].update(states)
        log(f"re-judged {candidate}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items())))
    summary["states"] = dict(summary["states"])
    overlay = read_overlay(run, identity)
    overlay.require_complete()  # a shard committed or regenerated meanwhile: rerun to judge it too
    activate(run, identity)
    summary["overlay"] = f"{OVERLAY_DIR}/{identity}"
    if select:
        from pipeline.postrun.selection import select_run

        summary["selection"] = select_run(run, cfg)
        if cfg["run"].get("report"):
            from pipeline.postrun.report import write_report

            summary["report"] = str(write_report(run))
    return summary
