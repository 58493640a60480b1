"""A run's own leftover Ray, stopped when the run starts again: the second line behind the
watchdog (engine/ray_watchdog.py), for the case where the watchdog died with the driver (a kill
of every process of the user, the OOM killer). `run` records which embedded Ray session it
started in `RUN/stats/ray_session.json`; the next `run` into the same folder, finding that the
driver recorded there is gone, kills what is left of that session and of nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil

from pipeline.core.run_dir import RunDir, atomic_write
from pipeline.engine.ray_watchdog import sweep


def session_record(run: RunDir) -> Path:
    return run.stats / "ray_session.json"


def record_session(run: RunDir, session_dir: str) -> None:
    me = psutil.Process()
    record = {"session_dir": session_dir, "driver_pid": me.pid, "driver_started": me.create_time()}
    atomic_write(session_record(run), json.dumps(record).encode())


def _driver_alive(record: dict) -> bool:
    try:  # the same PID started at another time is another process
        return psutil.Process(int(record["driver_pid"])).create_time() == record["driver_started"]
    except (psutil.Error, KeyError, TypeError, ValueError):
        return False


def stop_stale_session(run: RunDir) -> int:
    """Kill what is left of the Ray session an earlier, ended invocation of this run started;
    returns how many processes that was."""
    try:
        record = json.loads(session_record(run).read_text())
    except (OSError, ValueError):
        return 0
    if not isinstance(record, dict) or not record.get("session_dir") or _driver_alive(record):
        return 0  # nothing recorded, or that driver still runs: its Ray is not stale
    return sweep([str(record["session_dir"])], frozenset({os.getpid()}))
