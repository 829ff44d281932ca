# One command each on a fresh machine: `make demo`, `make test`.
VENV   := .venv
PYTHON := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
RUNS   := runs
# On these machines torch==2.13.0 is a CPU build that lies on disk; a looser spec pulls CUDA (GBs).
TORCH_PIN := torch==2.13.0

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet $(TORCH_PIN)
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: install
	$(VENV)/bin/nlp182 corpus prepare
	$(VENV)/bin/nlp182 train lsa --out $(RUNS)/lsa
	$(VENV)/bin/nlp182 train w2v --out $(RUNS)/w2v
	$(VENV)/bin/nlp182 eval $(RUNS)/lsa $(RUNS)/w2v
	$(VENV)/bin/nlp182 neighbors $(RUNS)/w2v king

test: install
	$(PYTHON) -m pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(RUNS) $(VENV)
