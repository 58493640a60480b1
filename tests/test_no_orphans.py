"""No orphans: the embedded Ray that `run` starts goes away with its driver, even after SIGKILL
(pipeline/engine/ray_watchdog.py), and the rerun finishes the run with each sample_id once; what
a run's earlier Ray left behind is stopped when the run starts again (engine/stale_ray.py)."""

import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from ray._common.utils import get_default_ray_temp_dir

from pipeline.cli.main import main
from pipeline.core.run_dir import RunDir
from pipeline.engine.ray_watchdog import session_processes
from pipeline.engine.stale_ray import record_session, session_record, stop_stale_session

REPO = Path(__file__).resolve().parents[1]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            pass
    return out


def test_a_sigkilled_driver_leaves_no_ray_process_and_the_rerun_finishes(ray_address, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "--task", "color", "--limit", "4", "--out", str(out), "--no-progress",
            "--set", "decode.working_size=128", "--set", "run.shard_size=1", "--set", "run.report=false"]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own embedded Ray, not the tests' one
    env["PYTHONPATH"] = str(REPO)
    driver = subprocess.Popen([sys.executable, "-m", "pipeline", *argv], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((out / "stats" / "shards").glob("shard-*.json")):  # mid-run: a first shard committed
            assert driver.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no shard committed in time"
            time.sleep(0.05)
        sessions = glob.glob(os.path.join(get_default_ray_temp_dir(), f"session_*_{driver.pid}"))
        ray_processes = session_processes(sessions)
        watchdogs = [p for p in psutil.Process(driver.pid).children() if "ray_watchdog.py" in " ".join(p.cmdline())]
    finally:
        driver.kill()
    driver.wait()
    assert len(sessions) == 1 and len(ray_processes) >= 5 and len(watchdogs) == 1  # GCS, raylet, agents, workers
    gone_by = time.monotonic() + 10
    while (session_processes(sessions) or _alive(watchdogs)) and time.monotonic() < gone_by:
        time.sleep(0.2)
    assert not session_processes(sessions) and not _alive(ray_processes)
    assert not _alive(watchdogs)  # it cleaned up and went away itself

    assert main(argv) == 0  # the rerun (on the tests' Ray) finishes the killed run
    shards = sorted(out.glob("candidates/shard-*.parquet")) + sorted(out.glob("errors/shard-*.parquet"))
    ids = [sid for p in shards for sid in pq.read_table(p, columns=["sample_id"]).column(0).to_pylist()]
    assert ids and len(ids) == len(set(ids))
    assert len(list((out / "stats" / "shards").glob("shard-*.json"))) == 4


HOLD_A_FILE = "import sys, time; handle = open(sys.argv[1], 'w'); time.sleep(120)"


def test_a_runs_own_leftover_ray_is_stopped_at_its_next_start_and_nothing_else(tmp_path):
    ours, other = tmp_path / "session_1_100", tmp_path / "session_1_1000"  # another session: a prefix of neither
    holders = {}
    for session in (ours, other):
        (session / "logs").mkdir(parents=True)
        holders[session] = subprocess.Popen([sys.executable, "-c", HOLD_A_FILE, str(session / "logs" / "worker.out")])
    try:
        deadline = time.monotonic() + 20
        while len(session_processes([ours, other])) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        run = RunDir(tmp_path / "run")
        run.stats.mkdir(parents=True)
        # the driver that recorded it has ended: same PID number, another start time
        session_record(run).write_text(json.dumps({"session_dir": str(ours), "driver_pid": os.getpid(), "driver_started": 0.0}))
        assert stop_stale_session(run) == 1
        holders[ours].wait(timeout=10)  # killed, not sleeping on (the sweep reaped its own child: no exit code left)
        assert not session_processes([ours]) and holders[other].poll() is None
        record_session(run, str(other))  # recorded by a driver that still runs (this one): not stale
        assert stop_stale_session(run) == 0 and holders[other].poll() is None
    finally:
        for proc in holders.values():
            proc.kill()
            proc.wait()
