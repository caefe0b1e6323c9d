# Benchmark targets, included by the root Makefile (which gives JOBS and
# CMAKE_GEN). Everything builds in Release under $(BENCH_BUILD) and writes
# its CSV/JSON/txt under $(BENCH_BUILD)/bench/.
#
#   make bench         the seed table: Serial, UnboundedThreads, SplitThreads, WorkerPool,
#                      WorkerPoolBatch, WorkerPoolParallelFor; then the hot
#                      path table: Empty, Wakeup, Idle, Nested (~1 minute)
#   make bench-peers   the same op and table with C-Thread-Pool (and its API
#                      on wpool), GThreadPool, OpenMP, oneTBB and Go
#   make bench-sweep   ns/job against workers 1..64 for wpool and each C peer,
#                      CSV + PNG plot (gnuplot)
#   make bench-flood   10,000,000 jobs from one producer into each pool: time
#                      and peak RSS
#   make bench-icount  instructions per task (callgrind): submit, batch, worker
#   make bench-xcore   the hot path in pinned cache-line round trips per task
#   make bench-redis   wpool-redis through a local redis-server: jobs/s with 1
#                      and 2 consumers, commands per job, push-to-ack latency
#   make bench-load    under load (bench/load/run.sh): wrk against the example
#                      server and Go net/http, and an open loop of Poisson
#                      arrivals; tables, CSV/JSON and two plots (~7 minutes)
#   make bench-io      blocking work (bench/io/run.sh): tasks that poll() a
#                      timerfd for 1 ms then hash, on fixed pools of 1..512
#                      workers, the elastic pool and peers; table, CSV/JSON
#                      and a plot (~7 minutes)
#
# Knobs (environment): WPOOL_BENCH_ROUNDS (5), WPOOL_BENCH_TIME (seconds per
# round, 0.2), WPOOL_BENCH_ROWS (comma list of names or globs, e.g.
# Serial,WorkerPool*), WPOOL_BENCH_WORKERS, WPOOL_BENCH_HASH=evp,
# WPOOL_FLOOD_MAX_S (30); see bench/runner.c. Peers' packages are installed
# when running as root, else skipped with a message naming the package.

BENCH_BUILD ?= build-release
BENCH_OUT   := $(BENCH_BUILD)/bench
BENCH_EXE   := $(BENCH_OUT)/wpool_bench
BENCH_PKGS  := cthreadpool-dev libglib2.0-dev pkg-config g++ libtbb-dev golang-go
BENCH_CPEERS = $(foreach p,cthreadpool wpool_thpool glib openmp tbb,--bin $(BENCH_OUT)/bench_$(p))
SWEEP_WORKERS ?= 1,2,4,8,16,64

.PHONY: bench-configure bench-peers-build

bench-configure:
	cmake -S . -B $(BENCH_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	  -DWPOOL_BUILD_BENCH=ON -DWPOOL_BUILD_TESTS=OFF -DWPOOL_BUILD_EXAMPLES=OFF

bench: bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_bench wpool_hotpath
	$(BENCH_EXE) --out $(BENCH_OUT) --tag seed
	$(BENCH_OUT)/wpool_hotpath --out $(BENCH_OUT)

# Instructions per task (callgrind): stable where times are not.
bench-icount: bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_icount
	sh bench/icount.sh $(BENCH_BUILD)

# The hot path in units of the machine's limit, from one run (bench/xcore.c):
# a pinned two-core cache-line round trip, then Empty and channel rows as
# round trips per task or handoff, beside issue 15's targets (~20 s).
.PHONY: bench-xcore
bench-xcore: bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_xcore
	$(BENCH_OUT)/wpool_xcore --out $(BENCH_OUT)

bench-peers-build:
	@sh bench/deps.sh $(BENCH_PKGS)
	@$(MAKE) --no-print-directory bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_bench_peers
	@sh bench/gobuild.sh $(BENCH_OUT)/seed_go.test

bench-peers: bench-peers-build
	$(BENCH_EXE) --out $(BENCH_OUT) --tag peers $(BENCH_CPEERS) --go $(BENCH_OUT)/seed_go.test
	@if [ -f bench/chan/run.sh ]; then bash bench/chan/run.sh $(BENCH_BUILD); fi

# Small rounds: 6 worker counts x ~10 rows.
bench-sweep: bench-peers-build
	@sh bench/deps.sh gnuplot-nox
	WPOOL_BENCH_ROUNDS=$${WPOOL_BENCH_ROUNDS:-3} WPOOL_BENCH_TIME=$${WPOOL_BENCH_TIME:-0.1} \
	  $(BENCH_EXE) --out $(BENCH_OUT) --tag sweep --workers $(SWEEP_WORKERS) \
	  --skip 'UnboundedThreads' $(BENCH_CPEERS)
	@if command -v gnuplot >/dev/null 2>&1; then \
	  gnuplot -e "csv='$(BENCH_OUT)/sweep.csv'; out='$(BENCH_OUT)/sweep.png'; \
	    subtitle='$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $$(nproc) CPUs'" \
	    bench/sweep.gp && echo "wrote $(BENCH_OUT)/sweep.png"; \
	else echo "bench: gnuplot not found (apt-get install gnuplot-nox): no plot"; fi

bench-flood: bench-peers-build
	$(BENCH_EXE) --out $(BENCH_OUT) --tag flood --flood $${WPOOL_FLOOD_JOBS:-10000000} $(BENCH_CPEERS)

# Under load (bench/load/run.sh, knobs at its top: WPOOL_LOAD_SECONDS,
# WPOOL_OPENLOOP_SECONDS...). Closed loop: wrk against examples/httpd (pool,
# inline, a thread per request) and Go net/http (a goroutine per request, the
# seed's pool) at 16/256/2048 connections, with and without wait=2. Open
# loop: Poisson arrivals of seed jobs at 50-150% of the measured capacity.
LOAD_PKGS := wrk libevent-dev pkg-config golang-go gnuplot-nox cthreadpool-dev curl
.PHONY: bench-load
bench-load:
	@sh bench/deps.sh $(LOAD_PKGS)
	cmake -S . -B $(BENCH_BUILD) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=Release \
	  -DWPOOL_BUILD_BENCH=ON -DWPOOL_BUILD_TESTS=OFF -DWPOOL_BUILD_EXAMPLES=ON
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_openloop
	@if cmake --build $(BENCH_BUILD) --target help | grep -q example_httpd; then \
	  cmake --build $(BENCH_BUILD) -j$(JOBS) --target example_httpd; \
	else echo "bench-load: no example_httpd target (libevent-dev?): its rows are left out"; fi
	bash bench/load/run.sh $(BENCH_BUILD)

# Blocking work (bench/io/run.sh, knobs at its top: WPOOL_IO_SECONDS...). A:
# poll() on a timerfd for 1 ms, then ~50 us of SHA-256; B: the seed job; C:
# both alternating. Fixed wpool pools of 1..512 workers, the elastic pool
# (workers = CPUs, max_workers 512) with and without wp_blocking_begin/end,
# Go, GThreadPool, a thread per task, libuv; WPOOL_IO_DOCS=1 copies the plot
# to docs/bench-io.png.
IO_PKGS := libuv1-dev libglib2.0-dev pkg-config golang-go gnuplot-nox
.PHONY: bench-io
bench-io:
	@sh bench/deps.sh $(IO_PKGS)
	@$(MAKE) --no-print-directory bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool_io
	bash bench/io/run.sh $(BENCH_BUILD)

# wpool-redis on this machine (redis/bench/run.sh, knobs at its top:
# WPOOL_REDIS_BENCH_JOBS...): push 100,000 seed jobs, serve them with 1 and 2
# consumer processes (jobs/s, server commands per job), push-to-ack latency
# at a fixed rate, the same jobs through RQ, Celery, Sidekiq and BullMQ (npm),
# and redis-benchmark's XADD/XACK as the limit.
REDIS_PKGS := redis-server redis-tools libhiredis-dev pkg-config gnuplot-nox python3-rq \
              python3-celery ruby-sidekiq nodejs npm
.PHONY: bench-redis
bench-redis:
	@sh bench/deps.sh $(REDIS_PKGS)
	@$(MAKE) --no-print-directory bench-configure
	cmake --build $(BENCH_BUILD) -j$(JOBS) --target wpool-redis wpool_redis_latency
	sh redis/bench/run.sh $(BENCH_BUILD)
