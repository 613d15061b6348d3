# Two commands set a fresh machine up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest catalogs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot run --demo

test: $(STAMP)
	$(BIN)/ruff check bot services db tests bench
	$(BIN)/ruff format --check bot services db tests bench
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile  # two workers, a file each: most tests wait on servers

# Re-extract the catalog template and merge it into de and en (translators fill the gaps).
catalogs: $(STAMP)
	$(BIN)/python locales/update.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
