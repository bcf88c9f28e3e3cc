# mcudeploy — the two commands a newcomer needs:
#   make demo   train the digits CNN, quantize it to int8 and take it through the pipeline
#   make test   run the test suite (QEMU tests included; TFLM/FVP tests skip unless configured)
# Both bootstrap .venv and the Arm toolchain + QEMU when missing, and are quick when set up.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm chromium
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

FARM_VENV := .venv-farm
FARM_STAMP := $(FARM_VENV)/.installed

.PHONY: all demo test fuzz lint bench setup toolchain venv farm clean

all: test

setup: venv toolchain farm

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,onnx]'
	@touch $@

# Installs the Debian toolchain (and Chromium, which renders the report in tests) when any piece is
# missing; root uses apt-get, others are told how.
toolchain:
	@missing=""; \
	command -v arm-none-eabi-gcc >/dev/null 2>&1 || missing="$$missing gcc-arm-none-eabi"; \
	test -f /usr/lib/arm-none-eabi/include/stdio.h || missing="$$missing libnewlib-arm-none-eabi"; \
	test -d /usr/lib/arm-none-eabi/include/c++ || missing="$$missing libstdc++-arm-none-eabi-newlib"; \
	command -v qemu-system-arm >/dev/null 2>&1 || missing="$$missing qemu-system-arm"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(APT_PACKAGES) || exit 3; \
	  else \
	    echo "missing:$$missing"; \
	    echo "run: sudo apt-get update && sudo apt-get install -y $(APT_PACKAGES)"; \
	    exit 3; \
	  fi; \
	fi

# Board farms (tests/test_farm.py): labgrid in its own virtualenv, since it replaces pyserial with its
# pyserial-labgrid fork; that venv sees .venv's packages after its own. Its exporter runs Debian's ser2net.
farm: $(FARM_STAMP)
	@command -v ser2net >/dev/null 2>&1 || test -x /usr/sbin/ser2net || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ser2net || exit 3; \
	  else echo "run: sudo apt-get install -y ser2net"; exit 3; fi; }

$(FARM_STAMP): $(STAMP)
	@test -x $(FARM_VENV)/bin/python || $(PYTHON) -m venv $(FARM_VENV)
	$(FARM_VENV)/bin/python -m pip install --quiet 'labgrid>=24'
	echo "import site; site.addsitedir('$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')')" \
	  > "$$($(FARM_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_mcudeploy_venv.pth"
	@touch $@

demo: setup
	$(VENV)/bin/mcudeploy deploy -c examples/mcudeploy.toml -o build/demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# Every property test with fresh random draws and MCD_FUZZ_SCALE (default 20) times its examples;
# `make test` runs the same tests derandomized (tests/hyp.py).
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -m hypothesis $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check mcudeploy tests benchmarks
	$(VENV)/bin/ruff format --check mcudeploy tests benchmarks

bench: setup
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .pytest_cache
