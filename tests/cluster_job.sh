#!/usr/bin/env bash
# Runs inside fresh network and process namespaces (only loopback; only this script's processes): a two-node Ray cluster
# (a head without GPUs, a worker declaring one logical GPU), a tiny-profile run submitted with
# `ray job submit`, then everything stopped. Usage: cluster_job.sh REPO OUT_DIR TWINS_DIR
set -euo pipefail
repo=$1 out=$2 twins=$3
ip link set lo up
# the namespace itself keeps the cluster on loopback, so multi-node mode may be on
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1
export RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_OFFLINE=1
export RAY_TMPDIR=$(mktemp -d /tmp/raycluster.XXXXXX)
# every process of this cluster (nodes, CLI, job driver) shares one token
export RAY_AUTH_MODE=token RAY_AUTH_TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")
bin=$repo/.venv/bin
# explicit addresses: "auto" would read /tmp/ray and may find another Ray outside this namespace
export RAY_ADDRESS=127.0.0.1:6390
trap '$bin/ray stop --force >/dev/null 2>&1 || true' EXIT
$bin/ray start --head --node-ip-address=127.0.0.1 --port=6390 --num-cpus=2 --num-gpus=0 \
    --include-dashboard=true --dashboard-host=127.0.0.1 --dashboard-port=8265 --temp-dir="$RAY_TMPDIR" --disable-usage-stats >/dev/null
$bin/ray start --address=127.0.0.1:6390 --node-ip-address=127.0.0.1 --num-cpus=2 --num-gpus=1 --disable-usage-stats >/dev/null
$bin/python - "$out/nodes.json" <<'PY'
import json, sys, ray
ray.init(address="127.0.0.1:6390", logging_level="ERROR")
nodes = [{"id": n["NodeID"], "gpus": n["Resources"].get("GPU", 0), "alive": n["Alive"]} for n in ray.nodes()]
json.dump(nodes, open(sys.argv[1], "w"))
PY
$bin/ray job submit --address http://127.0.0.1:8265 --submission-id tiny-colour -- \
    $bin/python -m pipeline run --task color --profile tiny --limit 2 --address 127.0.0.1:6390 --no-progress \
    --out "$out/run" --set models.tiny_dir="$twins" \
    --set model_stages.florence2.num_gpus=0.25 --set model_stages.sam2.num_gpus=0.25 \
    --set model_stages.zoedepth.num_gpus=0.25 --set model_stages.sd3_controlnet.num_gpus=0.25 \
    > "$out/job.log" 2>&1
$bin/ray job status --address http://127.0.0.1:8265 tiny-colour > "$out/status.txt" 2>&1 || true
$bin/ray stop --force > "$out/stop.log" 2>&1
trap - EXIT
pgrep -f "$RAY_TMPDIR" > "$out/left.txt" || true
