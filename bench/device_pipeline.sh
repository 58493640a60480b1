# The tiny profile's whole stage list for remove, colour and style on one GPU (bench/device_pipeline.py):
# GPU busy share, GPU-seconds per candidate per model stage, peak memory. Wheels for diffusers and
# transformers travel in .whl/ (see the device notes); run from the repo root. About 3 minutes.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 TRANSFORMERS_OFFLINE=1
OUT=${OUT:-bench/results}
mkdir -p $OUT
python3 -m bench.device_pipeline --profile tiny --inputs 16 --size 512 --steps 8 --out $OUT/device_pipeline.json 2>&1 | tee $OUT/device_pipeline.log
