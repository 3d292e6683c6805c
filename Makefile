# Thin front for the README's commands. The real build is CMake (CMakeLists.txt).
SHELL := /bin/bash
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc)
WERROR ?= OFF

# Debian 12 packages the build, tests and demo need.
DEPS := build-essential cmake pkg-config clang libclang-rt-14-dev \
  libuv1-dev libssl-dev openssl libmsgpack-cxx-dev libspdlog-dev catch2 libsqlite3-dev \
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev libsystemd-dev systemd \
  rsync python3 iproute2 iptables nftables faketime procps libnetfilter-queue-dev \
  dpkg-dev lintian strace man-db groff-base gzip adduser init-system-helpers

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

PKG_BUILD ?= build-pkg
# libFuzzer targets (tests/fuzz): clang, ASan+UBSan, their own build dir.
FUZZ_BUILD ?= build-fuzz
# Seconds per target: make fuzz, and the short run inside make test.
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 20

# The peers of the side-by-side suite (bench/compare), only for `make bench`.
BENCH_DEPS := unison syncthing csync2 python3-matplotlib iptables rsync diffutils

.PHONY: all deps bench-deps build build-asan test test-packaging demo bench clean fuzz fuzz-build package packaging-check soak

all: build

deps:
	@missing=$$(for p in $(DEPS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all present"; fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGOSSYNC_WERROR=$(WERROR)
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DGOSSYNC_SANITIZE=ON -DGOSSYNC_WERROR=$(WERROR)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test: build build-asan fuzz-build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L unit
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS)
	$(MAKE) test-packaging

# The unit against the built agent (no root needed), then, as root, the .deb
# built, installed, checked and purged on this machine.
test-packaging:
	tests/packaging/systemd_check.sh $(BUILD)
	@if [ "$$(id -u)" = 0 ] && command -v dpkg >/dev/null; then \
	  $(MAKE) packaging-check; \
	else \
	  echo "SKIP: packaging-check (installs the .deb with dpkg -i) needs root and dpkg; run: sudo make packaging-check"; \
	fi

fuzz-build: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DGOSSYNC_FUZZ=ON -DGOSSYNC_TESTS=OFF -DGOSSYNC_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

# Every fuzz target for FUZZ_SECONDS (default 600) each; fails on any crash.
fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

demo: build
	tests/demo/demo.sh $(BUILD)

# The chaos harness's long run (tests/chaos/soak, as root): five agents in
# network namespaces under a steady workload and random faults for
# SOAK_MINUTES; prints convergence lag and memory, fails on any broken
# promise or memory growth. Not part of `make test`.
SOAK_MINUTES ?= 60
soak: build
	tests/chaos/soak --build $(BUILD) --minutes $(SOAK_MINUTES)

bench-deps:
	@$(MAKE) --no-print-directory deps DEPS="$(BENCH_DEPS)"

# Micro benchmarks, then the side-by-side suite (as root: iptables counters)
# and gossync's reconciliation cost at 1,000,000 entries; the table goes into
# docs/performance.md and the plots into docs/img. Not part of `make test`.
BENCH_RUNS ?= 3
bench: build bench-deps
	./bench/run.sh $(BUILD)
	/usr/bin/python3 bench/compare/suite.py --build $(BUILD) --runs $(BENCH_RUNS)
	/usr/bin/python3 bench/compare/million.py --build $(BUILD)
	/usr/bin/python3 bench/compare/report.py --docs docs/performance.md --img docs/img

# The .deb: a Release build with Debian's hardening flags, then CPack
# (packaging/cpack.cmake). Prints the package's path last.
package: deps
	cmake -S . -B $(PKG_BUILD) -DCMAKE_BUILD_TYPE=Release -DGOSSYNC_TESTS=OFF -DGOSSYNC_BENCH=OFF \
	  -DCMAKE_CXX_FLAGS="$$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CXXFLAGS) $$(dpkg-buildflags --get CPPFLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)"
	cmake --build $(PKG_BUILD) -j $(JOBS) --target gossyncd gossync gossync_docs
	cd $(PKG_BUILD) && cpack -G DEB
	@ls $(PKG_BUILD)/gossync_*.deb

# systemd-analyze verify/security on the unit, then build, lint, install,
# check and purge the .deb (needs root: it runs dpkg -i on this machine).
packaging-check: package
	tests/packaging/systemd_check.sh $(PKG_BUILD)
	tests/packaging/deb_check.sh $(PKG_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(PKG_BUILD) $(FUZZ_BUILD)
