# Thin wrapper over CMake/ctest. `make run` and `make test` do all set-up on a fresh Debian 12.
BUILD      ?= build
BUILD_TYPE ?= Debug
CMAKE_ARGS ?=
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= validate config keys sse_relay bench_sse
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps configure build run test test-asan fuzz fuzz-deps clean help

all: build

help:
	@echo "make            install missing deps, configure and build into $(BUILD)/"
	@echo "make run        start tlab-sim (port 8000) and tlab-gateway (port 8001)"
	@echo "make test       build and run the whole ctest suite"
	@echo "make test-asan  the suite again in an ASan+UBSan build (build-asan/)"
	@echo "make fuzz       clang libFuzzer build ($(FUZZ_BUILD)/), each target run FUZZ_SECONDS=$(FUZZ_SECONDS) s"

deps:
	@infra/install-deps.sh --check >/dev/null 2>&1 || infra/install-deps.sh

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DTLAB_WERROR=ON $(CMAKE_ARGS)

configure: $(BUILD)/CMakeCache.txt

build: deps configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	infra/run.sh $(BUILD)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-asan:
	$(MAKE) test BUILD=build-asan CMAKE_ARGS="-DTLAB_SANITIZE=ON"

fuzz-deps:
	@infra/install-deps.sh --check --fuzz >/dev/null 2>&1 || infra/install-deps.sh --fuzz

# libFuzzer needs clang; only the fuzzer binaries (and what they link) are built, optimised
# (RelWithDebInfo: several times the executions of -O0 in the same time).
fuzz: fuzz-deps
	test -f $(FUZZ_BUILD)/CMakeCache.txt || CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTLAB_WERROR=ON -DTLAB_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(addprefix fuzz_,$(addsuffix _fuzzer,$(FUZZ_TARGETS)))
	tests/fuzz/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD)
