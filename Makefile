# The two commands a newcomer needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat constraints.txt pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: demo test bench lint typecheck deps sysdeps clean

$(STAMP):
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,bench]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

deps: $(STAMP)

# System tools the tests use (jq, openssh-server, systemd-analyze); installed when missing.
# The real Claude Code CLI (pinned, into .tools/) for the Claude Code tests and the demo.
sysdeps:
	scripts/install-system-deps.sh
	scripts/install-claude-code.sh

lint: deps
	$(BIN)/ruff check .

typecheck: deps
	$(BIN)/mypy

test: deps sysdeps lint typecheck
	$(BIN)/pytest

demo: deps
	-scripts/install-claude-code.sh
	$(BIN)/python scripts/demo.py

bench: deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .bench .demo
