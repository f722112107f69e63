# Sea Shore: entry points for developers and CI. The build itself is CMake.
#
#   make deps          install build/run dependencies (Debian 12, npm ci)
#   make build         release build in build/
#   make build-asan    ASan + UBSan build in build-asan/
#   make check         format-check, both builds, the tests (under ASan)
#   make dev           the whole stack on loopback (scripts/dev.sh)
#   make web           the studio's browser libraries into web/vendor/
#   make format        clang-format -i the C sources
#   make format-check  fail if any C source is not formatted
#   make clean         remove the build directories
#   make bench-ingest  the ingest benchmark (bench/ingest/run.sh $(BENCH_ARGS))
#   make bench-token   the token benchmark (bench/token/run.sh $(BENCH_ARGS))
#   make bench-upload  the upload benchmark (bench/upload/run.sh $(BENCH_ARGS))
#   make bench-mux     the mux benchmark (bench/mux/run.sh $(BENCH_ARGS))
#   make bench-e2e     time to file, 5/30/60-minute tracks (bench/e2e/run.sh $(BENCH_ARGS))
#   make bench-scale   the scale curve, 10..400 recorders (bench/scale/run.sh $(BENCH_ARGS))
#   make bench         all of them, then bench/results/<date>.md (BENCH_ARGS=--quick: short)
#   make chaos         the chaos test for MINUTES (default 30) with SEED (default 1)
#   make fuzz          every libFuzzer target for FUZZ_SECONDS each (default 600)

JOBS ?= $(shell nproc)

# C sources under these directories (those that exist), skipping build trees.
C_DIRS := $(wildcard libseashore services tools tests bench)
FIND_C = find $(C_DIRS) \( -type d \( -name 'build*' -o -name node_modules \) -prune \) \
	-o -type f \( -name '*.c' -o -name '*.h' \) -print0

.PHONY: deps build build-asan check dev web format format-check clean

deps:
	scripts/install-deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j$(JOBS)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSEASHORE_SANITIZE=ON
	cmake --build build-asan -j$(JOBS)

# Steps in this order even under make -j: deps first (clang-format, cmake),
# the format check before the builds; ctest's summary ends the output.
check:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory web
	$(MAKE) --no-print-directory format-check
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory build-asan
	scripts/fuzz.sh check
	cd build-asan && ctest --output-on-failure -j$(JOBS)

dev:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory web
	$(MAKE) --no-print-directory build
	scripts/dev.sh

# The studio's build step: browser libraries into web/vendor/.
web:
	scripts/web-build.sh

format:
	$(FIND_C) | xargs -0 -r clang-format -i

format-check:
	$(FIND_C) | xargs -0 -r clang-format --dry-run -Werror

clean:
	rm -rf build build-asan

# The ingest benchmark; report in bench/results/. Options through BENCH_ARGS,
# e.g. make bench-ingest BENCH_ARGS='--seconds 5 --scenarios "20x65536"'
.PHONY: bench bench-ingest bench-token bench-upload bench-mux bench-e2e bench-scale chaos fuzz
bench-token:
	bench/token/run.sh $(BENCH_ARGS)

bench-ingest:
	bench/ingest/run.sh $(BENCH_ARGS)

bench-upload:
	bench/upload/run.sh $(BENCH_ARGS)

bench-mux:
	bench/mux/run.sh $(BENCH_ARGS)

bench-e2e:
	bench/e2e/run.sh $(BENCH_ARGS)

bench-scale:
	bench/scale/run.sh $(BENCH_ARGS)

bench:
	$(MAKE) --no-print-directory deps
	bench/run-all.sh $(BENCH_ARGS)

# Faults injected for a long time through the whole pipeline (the test suite
# runs the same test for 2 minutes).
MINUTES ?= 30
SEED ?= 1
chaos:
	$(MAKE) --no-print-directory deps
	$(MAKE) --no-print-directory build-asan
	cd build-asan && SEASHORE_BUILD_DIR=$(CURDIR)/build-asan SEASHORE_SOURCE_DIR=$(CURDIR) \
		CHAOS_MINUTES=$(MINUTES) CHAOS_SEED=$(SEED) tests/chaos/test_chaos

# Long fuzzing runs (make check runs each target for 20 s).
FUZZ_SECONDS ?= 600
fuzz:
	$(MAKE) --no-print-directory deps
	scripts/fuzz.sh run $(FUZZ_SECONDS)
