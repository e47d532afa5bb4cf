# Two commands for readers (README): `make book` and `make test`; `make notebooks`
# re-executes the chapters in place, the one way their stored outputs change.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
NOTEBOOKS := $(shell ls book/*.ipynb 2>/dev/null)
NB ?= $(NOTEBOOKS)
# Hypothesis example counts: `make test HYPOTHESIS_PROFILE=thorough` for more.
HYPOTHESIS_PROFILE ?= ci

.PHONY: env book test unit nbval book-strict notebooks bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	# Build matplotlib's font cache now: its one-time notice on stderr would break nbval.
	MPLBACKEND=Agg $(PY) -c "import matplotlib.pyplot"
	rm -f $(VENV)/.installed-*
	touch $@

env: $(STAMP)

book: env
	$(VENV)/bin/jupyter-book build . --path-output .
	@echo "The book is at $(CURDIR)/_build/html/index.html"

test: unit nbval book-strict

unit: env
	$(PY) -m pytest tests --hypothesis-profile=$(HYPOTHESIS_PROFILE)

nbval: env
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider book/

book-strict: env
	rm -rf _build
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

notebooks: env
	$(PY) tools/notebooks.py $(NB)

bench: env
	$(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache .hypothesis
