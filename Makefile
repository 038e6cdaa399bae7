# Two commands for a fresh machine (Debian, Python 3.11, no GPU):
#   make book   build the HTML book into _build/html, executing every chapter
#   make test   run the whole test suite (unit, widget, notebooks, browser)
# Each creates .venv and installs what it needs the first time, and is quick
# when nothing changed (install stamps + Jupyter Book's execution cache).

SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch first, from this machine's local wheels (a CUDA build; runs on the CPU here).
# On another machine: make TORCH="torch torchvision"
TORCH  ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed
VENDOR := _vendor_static/vendor
PYTEST_ARGS ?=

.PHONY: book test install vendor chromium clean lab

PKG_SOURCES := $(shell find cnnviz -name '*.py' 2>/dev/null)

book: $(STAMP) $(VENDOR)/.done _build/.cnnviz-sources
	@$(PY) tools/sync_badges.py
	CNNVIZ_BOOK=1 $(VENV)/bin/jupyter-book build . --warningiserror --keep-going
	@echo; echo "Book built: open file://$(CURDIR)/_build/html/index.html"

test: book chromium $(VENV)/ipywidgets7/.done
	$(PY) -m pytest $(PYTEST_ARGS)

# Colab ships ipywidgets 7: tests/test_ipywidgets7.py runs the widget tests under it too.
$(VENV)/ipywidgets7/.done: $(STAMP)
	$(PY) -m pip install -q --no-deps --target $(VENV)/ipywidgets7 "ipywidgets>=7.7,<8" ipython_genutils
	touch $@

install: $(STAMP)

# The execution cache keys on each chapter's code only: when cnnviz itself
# changes, every chapter must be read and run again.
_build/.cnnviz-sources: $(PKG_SOURCES)
	rm -rf _build/.jupyter_cache _build/.doctrees _build/jupyter_execute
	mkdir -p _build && touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) requirements.txt pyproject.toml
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

vendor: $(VENDOR)/.done

$(VENDOR)/.done: $(STAMP) tools/vendor.sh
	tools/vendor.sh $(PY) $(VENDOR)
	touch $@

# Debian's chromium for the browser tests (Playwright drives it; never `playwright install`).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; }

# JupyterLab with the widget gallery, for instructors.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab widgets/

clean:
	rm -rf _build $(VENDOR)
