# The front door: `make run` and `make test` do everything on a fresh Debian 12.
BUILD      ?= build
TEST_BUILD ?= build-test
TSAN_BUILD ?= build-tsan
PY         := /usr/bin/python3
ARGS       ?=

.PHONY: all deps build build-test build-tsan run test unit e2e bench format format-check clean

all: build

deps:
	@./scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=release -Dtests=false

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(TEST_BUILD)/build.ninja:
	meson setup $(TEST_BUILD) --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false

build-test: deps $(TEST_BUILD)/build.ninja
	ninja -C $(TEST_BUILD)

# ThreadSanitizer lane: the unit tests and the end-to-end tests of the workflow engine
$(TSAN_BUILD)/build.ninja:
	meson setup $(TSAN_BUILD) --buildtype=debug -Db_sanitize=thread -Db_lundef=false

build-tsan: deps $(TSAN_BUILD)/build.ninja
	ninja -C $(TSAN_BUILD)

# Starts acervod on the embedded default (SQLite + filesystem store under ./var).
run: build
	./$(BUILD)/acervod --data-dir ./var --log-format text $(ARGS)

unit: build-test
	meson test -C $(TEST_BUILD) --print-errorlogs

e2e: build-test
	ACERVOD=$(CURDIR)/$(TEST_BUILD)/acervod $(PY) -m pytest -q tests/e2e $(ARGS)

# Every test: the C unit tests, then the end-to-end suite against a real acervod (ASan and
# UBSan), then the ThreadSanitizer lane (unit tests, and the engine's end-to-end tests).
test: build build-test build-tsan
	@./scripts/run-tests $(TEST_BUILD) $(TSAN_BUILD)

bench: build
	@./scripts/install-deps --bench
	./bench/run $(or $(SUITE),all) $(ARGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(TSAN_BUILD)
