"""A real two-node Ray cluster on this machine, in network and process namespaces of its own (only loopback),
with a tiny-profile run submitted through `ray job submit`."""

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
# own network (loopback only) and own process table: `ray stop` there cannot touch any other Ray
UNSHARE = ["unshare", "--net", "--pid", "--fork", "--mount-proc"]


def _can_make_namespaces():
    if not shutil.which("unshare"):
        return False
    return subprocess.run(UNSHARE + ["true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_make_namespaces(), reason="needs unshare (root or user namespaces)")
def test_job_on_two_nodes_places_model_actors_on_the_gpu_node(tmp_path):
    twins = tmp_path / "twins"
    # build the twins outside the job so the job measures placement, not building
    subprocess.run([str(REPO / ".venv/bin/python"), "-m", "pipeline", "models", "tiny", "--to", str(twins)], cwd=REPO, check=True, capture_output=True)
    done = subprocess.run(
        UNSHARE + ["bash", str(REPO / "tests/cluster_job.sh"), str(REPO), str(tmp_path), str(twins)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    log = (tmp_path / "job.log").read_text() if (tmp_path / "job.log").exists() else ""
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    assert "succeeded" in (tmp_path / "status.txt").read_text()
    nodes = json.loads((tmp_path / "nodes.json").read_text())
    assert len(nodes) == 2
    gpu_node = next(n["id"] for n in nodes if n["gpus"] == 1)
    rows = [r for p in sorted((tmp_path / "run" / "candidates").glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert rows
    for row in rows:
        stages = json.loads(row["provenance"])["stages"]
        for name in ("florence2_grounding", "sam2_mask", "zoedepth", "sd3_controlnet"):
            assert stages[name]["node"] == gpu_node, name
    assert (tmp_path / "left.txt").read_text().strip() == ""  # ray stop left no process behind
