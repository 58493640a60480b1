"""Starting Ray: the embedded one says its auth mode itself (token, Ray's default, so no start-up
warning), even when `ray` was imported first; a user's cluster keeps the user's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.engine import ray_runtime
from pipeline.engine.ray_runtime import environment_for, prepare_environment

REPO = Path(__file__).resolve().parents[1]
WARNING = "Token authentication is enabled for this Ray cluster"


def test_embedded_ray_chooses_token_auth_and_a_users_cluster_is_left_alone():
    assert environment_for(None)["RAY_AUTH_MODE"] == "token"
    cluster = environment_for("10.0.0.5:6379")
    assert "RAY_AUTH_MODE" not in cluster and "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in cluster


def test_a_users_auth_setting_is_never_overwritten(monkeypatch):
    env = {"RAY_AUTH_MODE": "disabled"}
    monkeypatch.setattr(ray_runtime.os, "environ", env)
    prepare_environment("10.0.0.5:6379")
    assert env["RAY_AUTH_MODE"] == "disabled"
    del env["RAY_AUTH_MODE"]
    prepare_environment("10.0.0.5:6379")
    assert "RAY_AUTH_MODE" not in env


# ray imported before init_ray, as tests/conftest.py does: Ray has read RAY_AUTH_MODE by then
SCRIPT = """
import ray
from pipeline.engine.ray_runtime import init_ray
init_ray(None, num_cpus=1)
print("answer", ray.get(ray.remote(lambda: 41 + 1).remote()))
ray.shutdown()
"""


def test_embedded_ray_starts_without_the_token_warning_and_runs_a_task(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "answer 42" in done.stdout, output[-3000:]
    assert WARNING not in output
