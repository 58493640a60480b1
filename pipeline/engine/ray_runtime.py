"""Starting or joining Ray. The embedded default binds to 127.0.0.1 and phones nowhere."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from pipeline.engine.ray_watchdog import start_watchdog

# Set before Ray starts, and inherited by every process it spawns.
QUIET_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_DEDUP_LOGS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
}
# A single-node Ray otherwise takes the machine's external address and listens on 0.0.0.0.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Recent Ray (2.60) turns token auth on for each new local Ray and warns unless RAY_AUTH_MODE is set
# (ray/_private/authentication/authentication_token_setup.py). Setting it to "token" is safe: that
# is Ray's own default, so the warning goes and other local users stay shut out of the loopback ports.
EMBEDDED_AUTH_ENV = {"RAY_AUTH_MODE": "token"}


def environment_for(address: str | None) -> dict[str, str]:
    """The variables set (where not already set) before Ray starts; a user's cluster (`address`)
    gets only the quiet ones, its network and auth settings are the user's."""
    env = dict(QUIET_ENV)
    if not address:
        env.update(LOOPBACK_ENV)
        env.update(EMBEDDED_AUTH_ENV)
    return env


def prepare_environment(address: str | None) -> None:
    """Ray reads these when it is imported, so they must be set before the first `import ray`."""
    for key, value in environment_for(address).items():
        os.environ.setdefault(key, value)
    ray = sys.modules.get("ray")
    if ray is not None and not address and not ray.is_initialized():
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:
            raise RuntimeError(
                "Ray was imported before its loopback setting was made; set RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 "
                "in the environment, or import pipeline.ray_runtime first"
            )
        _reload_auth_mode()


def _reload_auth_mode() -> None:
    """Ray caches RAY_AUTH_MODE when imported; if that was before we set it, the driver would send
    no token to a GCS that wants one. Re-read it as Ray's own _enable_token_auth does."""
    try:
        from ray._raylet import AuthenticationMode, Config, get_authentication_mode
    except ImportError:  # a Ray without token auth ignores RAY_AUTH_MODE
        return
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token" and get_authentication_mode() != AuthenticationMode.TOKEN:
        Config.initialize("")


def init_ray(address: str | None, num_cpus: int | None = None) -> dict[str, Any]:
    """Join `address` (or RAY_ADDRESS), or start an embedded single-node Ray on loopback.
    Returns how Ray was reached, for the run's stats."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    prepare_environment(address)
    import ray

    if ray.is_initialized():
        return {"mode": "existing", "address": ray.get_runtime_context().gcs_address}
    if address:
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True)
        return {"mode": "cluster", "address": address}
    # before ray.init, which takes seconds: a driver killed during it leaves nothing behind either
    watchdog = start_watchdog(_ray_temp_dir())
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
        log_to_driver=True,
    )
    session_dir = _session_dir()
    if watchdog is not None and session_dir:
        watchdog.announce(session_dir)
    return {"mode": "embedded", "address": ray.get_runtime_context().gcs_address, "session_dir": session_dir}


# Ray has no public call for its temp and session folders; without them the watchdog sweeps
# nothing and the run goes on as before


def _ray_temp_dir() -> str:
    from ray._common.utils import get_default_ray_temp_dir

    return get_default_ray_temp_dir()


def _session_dir() -> str | None:
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    return node.get_session_dir_path() if node is not None else None


def quiet_ray_data() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar of its own
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    # a task's own exception, not a UserCodeException that keeps it only as text: a writer's
    # OSError (disk full) must reach the driver whole, to be named in one line (engine/failures.py)
    ctx.raise_original_map_exception = True
    # its per-worker memory notes count each worker's imported libraries (torch, OpenCV) as
    # the operator's data; the run's own memory is bounded by the streaming plan
    detectors = getattr(ctx, "issue_detectors_config", None)
    if detectors is not None and hasattr(detectors, "high_memory_detector_config"):
        detectors.high_memory_detector_config.detection_time_interval_s = -1
    logging.getLogger("ray.data").setLevel(logging.WARNING)
