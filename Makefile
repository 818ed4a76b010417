# The two commands: `make book` builds the HTML report, `make test` runs every test.
# Both create the local environment (.venv, from requirements.lock) first if it is missing or stale.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= synthetic
TRIAL  ?= NCT06984497
CUTOFF ?=
CUTOFF_ARG := $(if $(CUTOFF),--cutoff "$(CUTOFF)",)
BLINDED ?=
BLIND_ARG  := $(if $(filter-out 0,$(BLINDED)),--blinded,)
JOBS ?=
JOBS_ARG   := $(if $(JOBS),--jobs $(JOBS),)
MAPPING ?=
MAPPING_ARG := $(if $(MAPPING),--mapping "$(MAPPING)",)

PORT ?=
PORT_ARG := $(if $(PORT),--port $(PORT),)

.PHONY: book run test simulate validate refresh lock bench clean design lab preview pdf dsmb

book: $(STAMP)
	$(BIN)/python -m helpers build --data "$(DATA)" --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(BLIND_ARG) $(JOBS_ARG)

# The book as one PDF (_build/html/downloads/<trial>-<cutoff or final>.pdf), printed offline by the system's Chromium.
pdf: $(STAMP)
	@sh tools/install_browser.sh
	$(BIN)/python -m helpers pdf --data "$(DATA)" --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(BLIND_ARG) $(JOBS_ARG)

# The DSMB pair in _build-dsmb/: the open (blinded) and closed (unblinded) reports of one export and cut-off.
dsmb: $(STAMP)
	@sh tools/install_browser.sh
	$(BIN)/python -m helpers dsmb --data "$(DATA)" --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(JOBS_ARG)

run: $(STAMP)
	$(BIN)/python -m helpers run --data "$(DATA)" --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(BLIND_ARG) $(JOBS_ARG)

test: $(STAMP)
	@sh tools/install_browser.sh
	$(BIN)/python -m pytest

simulate: $(STAMP)
	$(BIN)/python -m helpers simulate --trial "$(TRIAL)"

validate: $(STAMP)
	$(BIN)/python -m helpers validate --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(if $(filter-out synthetic,$(DATA)),"$(DATA)",)

# JupyterLab on notebooks/ with the kernel "<TRIAL> book": make lab [PORT=8888]
lab: $(STAMP)
	$(BIN)/python -m helpers lab --trial "$(TRIAL)" $(PORT_ARG)

# The book on http://127.0.0.1:8000/, rebuilt and reloaded on every change: make preview [PORT=8000] [DATA=...] ...
preview: $(STAMP)
	$(BIN)/python -m helpers preview --data "$(DATA)" --trial "$(TRIAL)" $(CUTOFF_ARG) $(MAPPING_ARG) $(BLIND_ARG) $(JOBS_ARG) $(PORT_ARG)

refresh: $(STAMP)
	$(BIN)/python -m helpers refresh

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_mmrm.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_privacy.py
	$(BIN)/python benchmarks/bench_build.py

# Operating characteristics of the design by simulation: make design [REPLICATES=1000] [JOBS=n] [SCHEDULER=tcp://host:port]
design: $(STAMP)
	$(BIN)/python -m helpers design --trial "$(TRIAL)" $(if $(REPLICATES),--replicates $(REPLICATES),) $(if $(JOBS),--jobs $(JOBS),) $(if $(SCHEDULER),--scheduler "$(SCHEDULER)",)

lock: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
	$(BIN)/python tools/lock.py

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

clean:
	rm -rf _build _build.d _build-validation ._build.lock book/generated _build-dsmb _build-dsmb.d ._build-dsmb.lock _build-dsmb-books
