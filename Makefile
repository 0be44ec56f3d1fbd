# The front door. `make demo` and `make test` do all set-up themselves on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
FM_TYPE ?= sd15
PYTEST_ARGS ?=

.PHONY: venv browser test lint format demo serve synth tools bench clean real-engine-tests bootstrap deploy destroy smoke

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[train,cdk,local,cli,dev]'
	# Only the CLIP BPE vocabulary file it ships is used (tests build real tokenizers offline);
	# --no-deps keeps torchvision out of the venv.
	$(VENV)/bin/pip install -q --no-deps 'open-clip-torch==3.3.0'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy functions training_container local_runtime loractl infrastructure scripts app.py

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The browser tests (tests/e2e/test_console_browser.py) drive Debian's Chromium through its
# chromedriver; installed once with apt when missing (CI runs as root; otherwise sudo is tried).
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif command -v apt-get >/dev/null; then \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
		{ $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } \
			|| echo "could not install chromium + chromium-driver (needs root): the browser tests are skipped"; \
	else echo "no apt-get: install Chromium and its chromedriver yourself, or the browser tests are skipped"; fi

test: venv lint browser
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache

# The tests against the real sd-scripts (docs/real-engine-tests.md): the pinned checkout and its own
# venv (fetched once into ignored folders), then the contract test over >= 500 generated configs per
# family, the FLUX.1 / SD 3.5 LoRA comparison, the container under the image's versions and the
# 2-step CPU training run. About 8 minutes and 9 GB of memory on 2 cores.
SD_SCRIPTS_DIR ?= $(CURDIR)/.sd-scripts
SD_SCRIPTS_VENV ?= $(CURDIR)/.sd-venv
real-engine-tests: venv
	bash tests/container/real_engine/setup_sd_scripts.sh $(SD_SCRIPTS_DIR) $(SD_SCRIPTS_VENV)
	SD_SCRIPTS_DIR=$(SD_SCRIPTS_DIR) SD_SCRIPTS_PYTHON=$(SD_SCRIPTS_VENV)/bin/python \
		$(PY) -m pytest -n 0 -s tests/container/test_sd_scripts_contract.py tests/container/test_real_sd_scripts_flow_lora.py \
			tests/container/test_real_image_stack.py tests/container/test_real_sd_scripts_training.py

# The local runtime (API + emulated AWS + local SageMaker) until Ctrl-C; SERVE_ARGS e.g. "--port 9000 --user alice".
SERVE_ARGS ?=
serve: venv
	$(PY) -m local_runtime serve $(SERVE_ARGS)

# Everything end to end on this machine with tiny models: make demo [FM_TYPE=sdxl|flux1|sd35]
demo: venv
	$(PY) -m local_runtime.demo --fm-type $(FM_TYPE)

# The CPU benchmarks (figures printed, nothing asserted; see benchmarks/RESULTS.md), ~6 minutes.
# The GPU one (benchmarks/bench_training_gpu.py) needs a CUDA machine and is run by hand.
bench: venv
	$(PY) benchmarks/bench_cold_start.py
	$(PY) benchmarks/bench_handler_overhead.py
	$(PY) benchmarks/bench_load.py --seconds 30 --concurrency 16
	$(PY) benchmarks/bench_dataset_validation.py --counts 1000,2500,5000
	$(PY) benchmarks/bench_data_path.py --images 1000 --model-mb 2048
	$(PY) benchmarks/bench_training_cpu.py

# The CDK CLI and a supported Node, installed locally (no global install); synth works offline
# once they are there. The Lambda bundle is built with pip (no Docker); the training image is
# built by `cdk deploy`, not here.
TOOLS := .tools
NODE_VERSION ?= 22.23.3
CDK_VERSION ?= 2.1148.1
NODE_BIN := $(abspath $(TOOLS)/node_modules/node/bin)
CDK := $(abspath $(TOOLS)/node_modules/aws-cdk/bin/cdk)
TOOLS_STAMP := $(TOOLS)/.installed-$(NODE_VERSION)-$(CDK_VERSION)

$(TOOLS_STAMP):
	mkdir -p $(TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) node@$(NODE_VERSION) aws-cdk@$(CDK_VERSION)
	touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

synth: venv tools
	PATH="$(NODE_BIN):$$PATH" JSII_NODE="$(NODE_BIN)/node" $(CDK) synth --quiet --app "$(PY) app.py" --output cdk.out
	@echo "template: cdk.out/LoraTraining.template.json"

# Deploy to AWS (README "Deploy to AWS"): credentials from the standard chain (AWS_PROFILE, SSO,
# environment). CDK_ARGS adds context or CLI flags, e.g. CDK_ARGS="-c alarmEmail=ops@example.com".
# bootstrap once per account and region; deploy needs Docker for the training image.
CDK_ARGS ?=
CDK_RUN = PATH="$(NODE_BIN):$$PATH" JSII_NODE="$(NODE_BIN)/node" $(CDK) --app "$(abspath $(PY)) app.py"

bootstrap: venv tools
	$(CDK_RUN) bootstrap $(CDK_ARGS)

deploy: venv tools
	$(CDK_RUN) deploy --outputs-file cdk.out/outputs.json $(CDK_ARGS)
	@echo "outputs: cdk.out/outputs.json (ApiUrl: make smoke ENDPOINT=<ApiUrl>)"

# Asks before deleting; data is kept unless deployed with -c removalPolicy=destroy (README).
destroy: venv tools
	$(CDK_RUN) destroy $(CDK_ARGS)

# End to end against a deployed stack (SigV4) or the local runtime (SMOKE_ARGS="--token ...").
ENDPOINT ?=
SMOKE_ARGS ?=
smoke: venv
	@test -n "$(ENDPOINT)" || { echo "usage: make smoke ENDPOINT=<the stack's ApiUrl> [SMOKE_ARGS=...]"; exit 2; }
	$(PY) scripts/smoke.py --endpoint "$(ENDPOINT)" $(SMOKE_ARGS)
