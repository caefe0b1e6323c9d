# The two commands: `make bench` (the seed benchmark) and `make test` (every
# test: the suite, the install test, the suite again on one CPU, then under
# ASan+UBSan, under TSan and under valgrind memcheck). Everything builds out
# of tree under build*/.
#
#   make test-quick    the suite once, RelWithDebInfo (what you run while editing)
#   make test-1cpu     the suite pinned to one CPU (taskset), where every
#                      hand-off between threads needs a context switch
#   make asan | tsan | memcheck   one sanitizer pass
#   make install PREFIX=/usr/local
#   make deb           Debian packages in build-deb/ (libwpool0, libwpool-dev,
#                      wpool-redis where hiredis is found), checked by lintian
#   make format        clang-format -i on every C file

JOBS   ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST  := ctest --output-on-failure -j$(JOBS)
# Tests read WPOOL_TEST_SCALE; sanitizers and valgrind run them at scale 1.
export WPOOL_TEST_SCALE ?= 1
# Debian packages the tests need beyond a fresh machine (servers, client
# libraries, load generators). `make test` installs the missing ones when run
# as root (bench/deps.sh: one apt-get update, then apt-get install -y);
# otherwise each is named and what needs it is skipped with a message.
TEST_PKGS ?= libevent-dev curl openssl lintian dpkg-dev file redis-server libhiredis-dev

.PHONY: all test-deps build test test-quick test-1cpu asan tsan memcheck install deb format clean \
        bench bench-peers bench-sweep bench-flood bench-icount

all: build

test-deps:
	@sh bench/deps.sh $(TEST_PKGS)

build: test-deps
	cmake -S . -B build $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build -j$(JOBS)

test-quick: build
	cd build && $(CTEST)

test: test-quick test-1cpu asan tsan memcheck
	@echo "make test: all passes green (suite, one CPU, ASan+UBSan, TSan, memcheck)"

# One CPU: spinning, yielding and sleeping must still make progress when
# producers, workers and waiters share a single CPU (the first one this
# process may use). Skipped with a message where taskset (util-linux) is
# missing.
FIRST_CPU = $(shell sed -n 's/^Cpus_allowed_list:[[:space:]]*\([0-9]*\).*/\1/p' /proc/self/status)
test-1cpu: build
	@if command -v taskset >/dev/null 2>&1 && taskset -c $(FIRST_CPU) true 2>/dev/null; then \
	  echo "test-1cpu: the suite on CPU $(FIRST_CPU) alone"; \
	  cd build && taskset -c $(FIRST_CPU) ctest --output-on-failure -j1 -E 'exported_symbols|install'; \
	else echo "test-1cpu: skipped (taskset not found or not usable)"; fi

asan: test-deps
	CC=clang cmake -S . -B build-asan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Debug \
	  -DWPOOL_SANITIZE=address,undefined -DWPOOL_BUILD_THPOOL=ON
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST) -E 'exported_symbols|install'

tsan: test-deps
	CC=clang cmake -S . -B build-tsan $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DWPOOL_SANITIZE=thread
	cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  $(CTEST) -E 'exported_symbols|install'

# valgrind memcheck on every unit test and example (stress sizes reduced by
# WPOOL_TEST_SMALL=1: valgrind serialises threads and is ~50x slower).
memcheck: build
	tests/run_memcheck.sh build

install: build
	cmake --install build --prefix $(PREFIX)

# cmake/deb.sh: a Release build for /usr, then cpack -G DEB.
DEB_PKGS = dpkg-dev file lintian libhiredis-dev libssl-dev
deb:
	@sh bench/deps.sh $(DEB_PKGS)
	sh cmake/deb.sh . build-deb
	@if command -v lintian >/dev/null 2>&1; then lintian --fail-on error build-deb/*.deb; \
	else echo "deb: lintian not found: packages not checked"; fi

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

clean:
	rm -rf build build-*

# ------------------------------------------------------------------ bench --
include bench/bench.mk
