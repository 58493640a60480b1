# The editor's GPU throughput at the gpu profile's shapes and at the CPU defaults (one H100/H200).
# Wheels for diffusers and transformers travel in .whl/ (see the device notes); run from the repo root.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-bench/results}
python3 -m bench.editor_throughput --profile gpu --device cuda --steps 20 --out $OUT/editor_throughput.jsonl 2>&1 | tee $OUT/bench_gpu.log
python3 -m bench.editor_throughput --profile tiny --device cuda --steps 300 --text-tokens 40 --out $OUT/editor_throughput.jsonl 2>&1 | tee $OUT/bench_tiny.log
