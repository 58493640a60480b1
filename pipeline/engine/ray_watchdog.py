"""The embedded Ray goes away with the driver, even after SIGKILL.

Ray binds the processes the driver starts (GCS, raylet, monitors) to it with PR_SET_PDEATHSIG,
but the raylet's own children (its dashboard and runtime-env agents, idle workers) only notice
that the raylet is gone later, and then try to report it to the dead GCS: they linger for a
minute or two with parent PID 1. So `init_ray` starts this watchdog beside an embedded Ray: a
small process in its own session (a Ctrl-C or a kill of the driver's process group does not
reach it) that holds the read end of a pipe whose write end only the driver has. When the
driver ends, however it ends, the pipe reads EOF, and the watchdog kills every process of that
Ray session and nothing else: a process belongs to the session when it has a file open under
the session's own folder (Ray points every process's log files there) and runs as this user.
The watchdog starts before `ray.init`, which takes seconds, and the driver sends the session
folder down the pipe once Ray is up; a driver killed before that leaves the watchdog the
folders Ray names after the driver's PID (`session_<time>_<pid>` under Ray's temp folder).
Never used for `--address`: a user's cluster is not ours to stop."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time

import psutil

SWEEP_S = 20.0  # the longest the watchdog keeps looking after the driver ended
QUIET_SWEEPS = 2  # sweeps in a row that found nothing: the session is gone


def session_processes(session_dirs: list[str], exclude: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This user's processes with a file open under one of `session_dirs`."""
    prefixes = tuple(os.path.join(os.path.realpath(d), "") for d in session_dirs)
    if not prefixes:
        return []
    uid = os.getuid()
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if proc.pid in exclude or uids is None or uids.real != uid:
            continue
        try:
            if any(f.path.startswith(prefixes) for f in proc.open_files()):
                found.append(proc)
        except psutil.Error:  # gone meanwhile, or not ours to look at
            continue
    return found


def sweep(session_dirs: list[str], exclude: frozenset[int]) -> int:
    """Kill the sessions' processes once; returns how many were found."""
    found = session_processes(session_dirs, exclude)
    for proc in found:
        try:
            proc.kill()  # the driver is gone: nothing of theirs is worth a graceful stop
        except psutil.Error:
            pass
    psutil.wait_procs(found, timeout=1.0)
    return len(found)


class Watchdog:
    """The driver's side: the pipe's write end, never closed, so it closes when this process exits."""

    def __init__(self, process: subprocess.Popen, write_end: int):
        self.process, self.write_end = process, write_end

    def announce(self, session_dir: str) -> None:
        """The session Ray started: from now on exactly its processes are swept."""
        try:
            os.write(self.write_end, (session_dir + "\n").encode())
        except OSError:
            pass  # the watchdog died: the run goes on without it


def start_watchdog(ray_temp_dir: str) -> Watchdog | None:
    """Start the watchdog of the embedded Ray this driver is about to start; None where it
    cannot start (the run goes on: Ray's own fate-sharing still stops the GCS and the raylet)."""
    read_end, write_end = os.pipe()  # non-inheritable: no process Ray starts keeps the pipe open
    try:
        watchdog = subprocess.Popen(
            # by path, isolated (-I): it needs the standard library and psutil, not this project on sys.path
            [sys.executable, "-I", os.path.abspath(__file__), ray_temp_dir, str(os.getpid())],
            stdin=read_end, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # never holds the driver's output open
            start_new_session=True, close_fds=True,
        )
    except OSError:
        os.close(write_end)
        return None
    finally:
        os.close(read_end)
    return Watchdog(watchdog, write_end)


def main(argv: list[str]) -> int:
    ray_temp_dir, driver = argv[0], int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver
    announced = [line.strip() for line in sys.stdin]  # blocks until the driver's end closes: it has exited
    session_dirs = [d for d in announced if d] or glob.glob(os.path.join(glob.escape(ray_temp_dir), f"session_*_{driver}"))
    exclude = frozenset({os.getpid(), driver})  # never the driver, should it still be exiting
    deadline, quiet = time.monotonic() + SWEEP_S, 0
    while time.monotonic() < deadline and quiet < QUIET_SWEEPS:
        quiet = 0 if sweep(session_dirs, exclude) else quiet + 1
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
