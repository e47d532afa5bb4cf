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

.PHONY: env book test unit nbval book-strict browser notebooks bench clean

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

test: unit nbval book-strict browser

unit: env
	$(PY) -m pytest tests fancydl --doctest-modules --ignore=tests/browser \
		--hypothesis-profile=$(HYPOTHESIS_PROFILE)

nbval: env
	$(PY) -m pytest --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		-p no:cacheprovider book/

book-strict: env
	rm -rf _build
	$(VENV)/bin/jupyter-book build . --path-output . -W -n --keep-going

# The rendered book in Chromium at 1280 and 390 px (tests/browser). It needs the build
# above and a system Chromium (never a downloaded one); without Chromium it says how to
# get one and skips. Screenshots of every page land in _build/screenshots.
CHROMIUM := $(or $(FANCYDL_CHROMIUM),$(shell command -v chromium chromium-browser google-chrome 2>/dev/null | head -n1))

browser: env
	@test -f _build/html/book/intro.html || $(MAKE) book-strict
ifeq ($(CHROMIUM),)
	@echo "SKIPPED the browser tests (tests/browser): no Chromium found. To run them,"
	@echo "  install it (Debian/Ubuntu: sudo apt-get install chromium fonts-noto-cjk)"
	@echo "  or set FANCYDL_CHROMIUM=/path/to/chromium, then run make test again."
	@test -z "$(FANCYDL_REQUIRE_BROWSER)" || { echo "FANCYDL_REQUIRE_BROWSER is set: failing"; exit 1; }
else
	FANCYDL_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/browser -p no:cacheprovider
endif

notebooks: env
	$(PY) tools/notebooks.py $(NB)

# Some machines set OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE to work around old OpenBLAS
# builds; they force NumPy's current OpenBLAS onto slower kernels. The benchmarks run
# without them (RESULTS.md records the BLAS kernel used); tests keep the environment.
bench: env
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(PY) benchmarks/run.py

clean:
	rm -rf _build .pytest_cache .hypothesis
