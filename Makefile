# The two commands of the README: `make run` and `make test`. Both install what is missing.
BUILD      ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
ARGS       ?=

# ccache keys on relative paths, so a fresh clone elsewhere (CI) hits the same cache.
export CCACHE_BASEDIR  := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all deps llama configure build run test fuzz test-sanitize bench bench-typing bench-prompt bench-auth bench-audit bench-signin bench-tls bench-upstream bench-lora bench-cache clean format

all: build

deps:
	@scripts/deps.sh

llama: deps
	@scripts/fetch_llama.sh

configure: llama
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

# Starts the server on embedded defaults (./data, a synthesized demo model unless --model is given).
run: build
	$(BUILD)/src/codepilot serve $(ARGS)

# The suite runs against a throw-away PostgreSQL and OpenLDAP slapd (scripts/test_services.sh),
# then every fuzz harness for a few seconds (FUZZ_TEST_SECONDS; docs/testing.md).
FUZZ_TEST_SECONDS ?= 5
test: build
	@scripts/test_services.sh start $(BUILD)
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600; rc=$$?; \
		cd $(CURDIR) && scripts/test_services.sh stop $(BUILD); \
		scripts/fuzz.sh $(FUZZ_TEST_SECONDS) || rc=1; exit $$rc

# Each libFuzzer harness for FUZZ_SECONDS (clang-14, ASan + UBSan; build-fuzz/).
FUZZ_SECONDS ?= 60
fuzz: llama
	@scripts/fuzz.sh $(FUZZ_SECONDS)

# The unit and integration tests again, built with AddressSanitizer + UBSan (build-sanitize/). Warnings
# are not errors there: GCC 12 reports false -Wmaybe-uninitialized in libstdc++ under ASan.
SANITIZE_BUILD ?= build-sanitize
test-sanitize: llama
	@cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCODEPILOT_SANITIZE=ON -DCODEPILOT_WERROR=OFF $(CMAKE_ARGS) >/dev/null
	@cmake --build $(SANITIZE_BUILD) -j$(JOBS)
	@scripts/test_services.sh start $(SANITIZE_BUILD)
	@cd $(SANITIZE_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitize.supp:print_suppressions=0 \
		UBSAN_OPTIONS=print_stacktrace=1:suppressions=$(CURDIR)/tests/sanitize.supp \
		ctest --output-on-failure -j$(JOBS) --timeout 1200; rc=$$?; \
		cd $(CURDIR) && scripts/test_services.sh stop $(SANITIZE_BUILD); exit $$rc

# Routing to upstream llama-servers: added latency vs direct, two replicas vs one (docs/benchmarks.md).
bench-upstream: llama
	@scripts/bench_upstream.sh

# LoRA adapters beside their base: throughput with 0, 1 and 2 adapters in the mix (docs/benchmarks.md).
bench-lora: llama
	@scripts/bench_lora.sh

bench-cache: llama
	@scripts/bench_response_cache.sh

# Benchmarks: codepilot vs llama-server from the same pinned tree (see docs/benchmarks.md).
bench: llama
	@scripts/bench.sh

bench-typing: llama
	@scripts/bench_typing.sh

# Cold prompt evaluation: deterministic codepilot (tiled prompt calls) vs llama-server.
bench-prompt: llama
	@scripts/bench_prompt.sh

# Auth + RBAC overhead with wrk: off vs SQLite vs PostgreSQL (a throw-away one).
bench-auth: llama
	@scripts/test_services.sh start $(BUILD)
	@PG_URL=$$(grep PG_URL $(BUILD)/test-services.env | cut -d= -f2-) scripts/bench_auth.sh; rc=$$?; \
		scripts/test_services.sh stop $(BUILD); exit $$rc

# Quota + audit overhead: batched vs sync vs off, SQLite and PostgreSQL.
bench-audit: llama
	@scripts/test_services.sh start $(BUILD)
	@PG_URL=$$(grep PG_URL $(BUILD)/test-services.env | cut -d= -f2-) \
		CONFIGS="$${CONFIGS:-off sqlite sqlite-batched sqlite-sync postgresql postgresql-batched postgresql-sync}" \
		scripts/bench_auth.sh; rc=$$?; scripts/test_services.sh stop $(BUILD); exit $$rc

# Sign-in work vs everyone else: latency while 32 sign-ins wait on a stopped slapd, inline vs pooled.
bench-signin: llama
	@scripts/test_services.sh start $(BUILD)
	@scripts/bench_signin.sh; rc=$$?; scripts/test_services.sh stop $(BUILD); exit $$rc

# TLS termination: codepilot's own TLS 1.3 vs nginx in front of plain codepilot (wrk over https).
bench-tls: llama
	@scripts/bench_tls.sh

clean:
	rm -rf $(BUILD)

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i
