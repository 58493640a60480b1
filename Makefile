# `make demo` and `make test` set up .venv on first use.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Nothing leaves the machine: Ray on loopback, no usage stats, no model hub.
export RAY_USAGE_STATS_ENABLED := 0
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TRANSFORMERS_OFFLINE := 1

DEMO_OUT ?= runs/demo

.PHONY: setup demo verify test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# without --no-deps it would add opencv-python beside the contrib build and break cv2
	$(PY) -m pip install -q --no-deps "rapidocr-onnxruntime==1.4.4"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipeline run --task all --out $(DEMO_OUT)
	$(PY) -m pipeline sheet $(DEMO_OUT) --out $(DEMO_OUT)/contact_sheet.png --per-task 2

# trains the bundled editor on the demo's tone, style and colour rows (about 4 minutes on 2 cores)
verify: $(STAMP)
	$(PY) -m pipeline verify $(DEMO_OUT) --task tone,style,color

test: $(STAMP)
	$(PY) -m pytest -q

# the CPU benchmarks (about 35 minutes on 2 cores); each prints a table and writes JSON (docs/bench/, bench/results/)
bench: $(STAMP)
	$(PY) bench/driver_memory.py
	$(PY) bench/naive_vs_streaming.py
	$(PY) bench/calibrated_chain.py
	$(PY) bench/engine_overhead.py
	$(PY) bench/plan_streaming.py
	$(PY) bench/plan_overlap_run.py
	$(PY) -m bench.filter_benchmark
	$(PY) -m bench.filter_benchmark --severity mild

clean:
	rm -rf runs .pytest_cache
