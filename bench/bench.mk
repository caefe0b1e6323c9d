# Benchmark targets (owned by bench/). Placeholder until the benchmark lands.
bench: build
	@echo "bench: not yet written"
bench-peers bench-sweep bench-flood: bench
