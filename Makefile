# One command each on a fresh machine: `make demo`, `make test`.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUNS   := runs
# On these machines torch==2.13.0 is a CPU build that lies on disk; a looser spec pulls CUDA (GBs).
TORCH_PIN := torch==2.13.0
DEMO_PORT := 8182
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo test lint bench clean docs bench-pages

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(TORCH_PIN)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/nlp182 corpus prepare
	$(VENV)/bin/nlp182 train lsa --out $(RUNS)/lsa --overwrite
	$(VENV)/bin/nlp182 train w2v --out $(RUNS)/w2v --overwrite
	$(VENV)/bin/nlp182 eval $(RUNS)/lsa $(RUNS)/w2v
	$(VENV)/bin/nlp182 neighbors $(RUNS)/w2v king
	$(VENV)/bin/nlp182 index $(RUNS)/w2v
	$(VENV)/bin/nlp182 serve $(RUNS)/w2v --port $(DEMO_PORT) & server=$$!; \
	$(PYTHON) -m nlp182.server.probe http://127.0.0.1:$(DEMO_PORT) '/v1/neighbors?word=king&k=10'; status=$$?; \
	kill -TERM $$server; wait $$server; exit $$status

test: install browser
	$(PYTHON) -m pytest

# The documentation site: benchmark pages regenerated from bench/results/*.json, then a strict
# MkDocs build (a broken link, a missing reference or a docstring warning fails) into site/.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PYTHON) -m pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

bench-pages: install
	$(PYTHON) -m bench.pages

docs: $(DOCS_STAMP) bench-pages
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# Headless Chromium + driver for the web-page test (Debian packages; CI runs as root).
.PHONY: browser
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		$(SUDO) apt-get update && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			chromium chromium-driver; \
	fi

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(RUNS) $(VENV) site
