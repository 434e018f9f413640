# Two commands on a fresh machine: `make quickstart` and `make test`.
# Each creates .venv on first use; the stamp file makes later runs skip the install.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-slow bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/ocg quickstart

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q || [ $$? -eq 5 ]  # 5 = no tests collected

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs
