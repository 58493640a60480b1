import os

# Before anything imports Ray or the hub clients: nothing may leave 127.0.0.1.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def ray_address():
    """One embedded Ray for the whole session; subprocess runs join it by address."""
    import ray

    from pipeline.engine.ray_runtime import init_ray

    info = init_ray(None, num_cpus=2)
    yield info["address"]
    ray.shutdown()
