// The original experiment, in Go: one goroutine per job against a worker
// pool fed by a channel, on the seed op (10,000 jobs; job n SHA-256s
// "payload-n"). Standard library only. wpool_bench runs each benchmark in its
// own process (-test.bench '^BenchmarkX$' -test.count 1) and parses its
// -benchmem line into the table; the peak-RSS-KB metric is the process's
// VmHWM, so it is that benchmark's alone.
//
// The job formats into a stack buffer and hashes with crypto/sha256, so it
// allocates nothing itself, like the C job: B/op and allocs/op are what the
// way of running it costs.
package wpoolbench

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const jobs = 10000

var results, reference [jobs]uint64

func job(n int) {
	var buf [32]byte
	b := strconv.AppendInt(append(buf[:0], "payload-"...), int64(n), 10)
	sum := sha256.Sum256(b)
	results[n] = binary.LittleEndian.Uint64(sum[:8]) // the C job's memcpy on x86
}

func init() {
	for n := 0; n < jobs; n++ {
		job(n)
	}
	reference = results
}

// workers is the pool size: $WPOOL_WORKERS (the runner passes wpool's
// default), else GOMAXPROCS.
func workers() int {
	if v, err := strconv.Atoi(os.Getenv("WPOOL_WORKERS")); err == nil && v > 0 {
		return v
	}
	return runtime.GOMAXPROCS(0)
}

func peakRSSKB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(s.Text())[1])
			return float64(kb)
		}
	}
	return 0
}

// finish checks one more op, run on its own, against the serial answer, so
// that a broken way of running cannot look fast, and reports peak RSS.
func finish(b *testing.B, op func(), nworkers int) {
	b.StopTimer()
	results = [jobs]uint64{}
	op()
	if results != reference {
		b.Fatal("wrong results")
	}
	b.ReportMetric(peakRSSKB(), "peak-RSS-KB")
	b.ReportMetric(float64(nworkers), "workers")
}

func BenchmarkSerial(b *testing.B) {
	op := func() {
		for n := 0; n < jobs; n++ {
			job(n)
		}
	}
	for i := 0; i < b.N; i++ {
		op()
	}
	finish(b, op, 1)
}

func BenchmarkGoroutinePerJob(b *testing.B) {
	var wg sync.WaitGroup
	op := func() {
		wg.Add(jobs)
		for n := 0; n < jobs; n++ {
			go func(n int) {
				job(n)
				wg.Done()
			}(n)
		}
		wg.Wait()
	}
	for i := 0; i < b.N; i++ {
		op()
	}
	finish(b, op, jobs)
}

// BenchmarkWorkerPool: a fixed set of goroutines ranging over a buffered
// channel of job numbers, made once outside the timed region and reused by
// every op, as wpool's WorkerPool row reuses its pool.
func BenchmarkWorkerPool(b *testing.B) {
	nw := workers()
	ch := make(chan int, 1024)
	var wg sync.WaitGroup
	for w := 0; w < nw; w++ {
		go func() {
			for n := range ch {
				job(n)
				wg.Done()
			}
		}()
	}
	defer close(ch)
	op := func() {
		wg.Add(jobs)
		for n := 0; n < jobs; n++ {
			ch <- n
		}
		wg.Wait()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		op()
	}
	finish(b, op, nw)
}
