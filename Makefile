# Two commands on a fresh machine: `make quickstart` and `make test`.
# Each creates .venv on first use; the stamp file makes later runs skip the install.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: quickstart test test-slow bench clean

$(STAMP): pyproject.toml
	@# The sandbox's seccomp filter needs the system's libseccomp (pyseccomp loads it): install it where we may.
	@if ! ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2'; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then (apt-get install -y -q libseccomp2 || (apt-get update -q && apt-get install -y -q libseccomp2)) \
			|| echo "note: libseccomp2 could not be installed: the sandbox will run without its seccomp filter"; \
		else echo "note: libseccomp2 is missing: the sandbox will run without its seccomp filter"; fi; fi
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

quickstart: $(STAMP)
	$(VENV)/bin/ocg quickstart

# The suite runs on every core (pytest-xdist, up to 4 workers; worksteal: each starts on a contiguous run of
# tests, so a module's fixtures are mostly built once, and an idle worker takes tests from a busy one). Tests
# marked serial (training processes that exchange tensors) run alone afterwards: under another worker's load
# a two-process FSDP run once aborted at exit. Exit status 5 = no tests collected.
# Only the files that mark tests serial are collected again (collecting the whole suite takes 16 s on a slow host).
SERIAL_FILES = $(shell grep -l 'pytest.mark.serial' tests/*.py)
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal --durations=15 -m 'not slow and not serial' || [ $$? -eq 5 ]
	$(VENV)/bin/python -m pytest -q -m 'serial and not slow' $(SERIAL_FILES) || [ $$? -eq 5 ]

test-slow: $(STAMP)
	$(VENV)/bin/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) runs
