"""No orphans: the embedded Ray that `run` starts goes away with its driver, even after SIGKILL
(pipeline/engine/ray_watchdog.py), and the rerun finishes the run with each sample_id once."""

import glob
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq
from ray._common.utils import get_default_ray_temp_dir

from pipeline.cli.main import main
from pipeline.engine.ray_watchdog import session_processes

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
