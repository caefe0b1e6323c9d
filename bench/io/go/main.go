// wpool_io_go: the Go rows of `make bench-io` (bench/io/run.sh), the same
// tasks and output as bench/io/io.c. Standard library only.
//
// A task of shape A polls the timerfd it takes from a free list (armed for
// -wait-us) through syscall.Syscall, so the runtime sees a goroutine in a
// system call and sysmon hands its P to another thread, then hashes -reps
// seed jobs ("payload-n" through crypto/sha256); B is one seed job; C
// alternates A and B every -phase-ms, the kind fixed at submit time.
//
//	-mode goroutine   a goroutine per task, at most -inflight at once
//	-mode pool        the seed's pool: -workers goroutines ranging over a
//	                  channel of -inflight slots
//
// Output: SAMPLE lines every -sample-ms (finished tasks, the process's OS
// threads), then RESULT, key=value.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

var (
	mode      = flag.String("mode", "goroutine", "goroutine or pool")
	shape     = flag.String("shape", "A", "A, B or C")
	nworkers  = flag.Int("workers", 0, "pool goroutines (0: GOMAXPROCS)")
	seconds   = flag.Float64("seconds", 3, "seconds of load")
	phaseMs   = flag.Int64("phase-ms", 2000, "C: ms per phase")
	reps      = flag.Int("reps", 0, "seed jobs per A task")
	waitUs    = flag.Int64("wait-us", 1000, "A: kernel wait, us")
	inflight  = flag.Int("inflight", 1024, "tasks queued or running at most")
	sampleMs  = flag.Int64("sample-ms", 10, "sample period, ms")
	calibrate = flag.Bool("calibrate", false, "print the reps for -target-us and exit")
	targetUs  = flag.Float64("target-us", 50, "calibration target, us")
)

type shard struct {
	done, sink uint64
	_          [48]byte
}

var (
	shards     [64]shard
	running    int32
	maxRunning int32
	freeFds    = make(chan int, 4096)
)

func seedHash(n uint64) uint64 {
	var buf [32]byte
	b := strconv.AppendUint(append(buf[:0], "payload-"...), n, 10)
	sum := sha256.Sum256(b)
	return binary.LittleEndian.Uint64(sum[:8])
}

type itimerspec struct{ intervalSec, intervalNsec, valueSec, valueNsec int64 }
type pollfd struct {
	fd             int32
	events, revent int16
}

func blockInKernel() {
	var fd int
	select {
	case fd = <-freeFds:
	default:
		r, _, e := syscall.RawSyscall(syscall.SYS_TIMERFD_CREATE, 1 /* CLOCK_MONOTONIC */, syscall.O_CLOEXEC, 0)
		if e != 0 {
			fmt.Fprintln(os.Stderr, "wpool_io_go: timerfd_create:", e)
			os.Exit(3)
		}
		fd = int(r)
	}
	w := *waitUs * 1000
	its := itimerspec{valueSec: w / 1e9, valueNsec: w % 1e9}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_TIMERFD_SETTIME, uintptr(fd), 0,
		uintptr(unsafe.Pointer(&its)), 0, 0, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "wpool_io_go: timerfd_settime:", e)
		os.Exit(3)
	}
	p := pollfd{fd: int32(fd), events: 1 /* POLLIN */}
	for {
		// Syscall, not RawSyscall: the runtime knows this thread is in the kernel.
		_, _, e := syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&p)), 1, ^uintptr(0))
		if e != syscall.EINTR {
			break
		}
	}
	select {
	case freeFds <- fd:
	default:
		syscall.Close(fd)
	}
}

func task(arg uint64) {
	n := arg >> 1
	var v uint64
	if arg&1 != 0 {
		blockInKernel()
	}
	r := atomic.AddInt32(&running, 1)
	for m := atomic.LoadInt32(&maxRunning); r > m && !atomic.CompareAndSwapInt32(&maxRunning, m, r); m = atomic.LoadInt32(&maxRunning) {
	}
	if arg&1 != 0 {
		for i := 0; i < *reps; i++ {
			v ^= seedHash(n*uint64(*reps) + uint64(i))
		}
	} else {
		v = seedHash(n)
	}
	atomic.AddInt32(&running, -1)
	s := &shards[n%64]
	atomic.AddUint64(&s.sink, v) // a statistic, so nothing is elided
	atomic.AddUint64(&s.done, 1)
}

func doneNow() (n uint64) {
	for i := range shards {
		n += atomic.LoadUint64(&shards[i].done)
	}
	return
}

func osThreads() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "Threads:") {
			n, _ := strconv.Atoi(strings.TrimSpace(s.Text()[8:]))
			return n
		}
	}
	return 0
}

type sample struct {
	t       time.Duration
	done    uint64
	threads int
}

func main() {
	flag.Parse()
	if *calibrate {
		r := make([]float64, 25)
		for k := range r {
			a := time.Now()
			for i := uint64(0); i < 2000; i++ {
				shards[0].sink ^= seedHash(i)
			}
			r[k] = float64(time.Since(a).Nanoseconds()) / 2000
		}
		sort.Float64s(r)
		n := int(*targetUs*1000/r[12] + 0.5)
		if n < 1 {
			n = 1
		}
		fmt.Printf("CALIBRATE reps=%d ns_per_job=%.1f target_us=%.0f\n", n, r[12], *targetUs)
		return
	}
	if *reps <= 0 || (*shape != "A" && *shape != "B" && *shape != "C") {
		flag.Usage()
		os.Exit(2)
	}
	if *nworkers == 0 {
		*nworkers = runtime.GOMAXPROCS(0)
	}
	t0 := time.Now()
	dur := time.Duration(*seconds * 1e9)
	var samples []sample
	sdone := make(chan struct{})
	go func() {
		period := time.Duration(*sampleMs) * time.Millisecond
		for k := time.Duration(0); k*period <= dur; k++ {
			time.Sleep(time.Until(t0.Add(k * period)))
			samples = append(samples, sample{time.Since(t0), doneNow(), osThreads()})
		}
		close(sdone)
	}()

	var submitted uint64
	next := func(now time.Time) uint64 {
		submitted++
		a := *shape == "A" || (*shape == "C" && (now.Sub(t0).Milliseconds() / *phaseMs)%2 == 0)
		if a {
			return submitted<<1 | 1
		}
		return submitted << 1
	}
	produce := func(submit func(uint64)) {
		now := time.Now()
		for i := 0; now.Sub(t0) < dur; i++ {
			a := next(now)
			submit(a)
			if a&1 != 0 || i%64 == 0 {
				now = time.Now()
			}
		}
	}
	workers := 0
	switch *mode {
	case "goroutine":
		sem := make(chan struct{}, *inflight)
		produce(func(a uint64) {
			sem <- struct{}{}
			go func() { task(a); <-sem }()
		})
		for i := 0; i < *inflight; i++ {
			sem <- struct{}{}
		}
	case "pool":
		workers = *nworkers
		ch := make(chan uint64, *inflight)
		var wg sync.WaitGroup
		wg.Add(workers)
		for w := 0; w < workers; w++ {
			go func() {
				for a := range ch {
					task(a)
				}
				wg.Done()
			}()
		}
		produce(func(a uint64) { ch <- a })
		close(ch)
		wg.Wait()
	default:
		flag.Usage()
		os.Exit(2)
	}
	<-sdone
	completed := doneNow()
	for _, s := range samples {
		fmt.Printf("SAMPLE t_ms=%.3f jobs=%d threads=%d\n", float64(s.t.Nanoseconds())/1e6, s.done, s.threads)
	}
	status := "ok"
	if completed != submitted {
		status = "FAILED:lost-tasks"
	}
	fmt.Printf("RESULT row=go-%s shape=%s workers=%d max_workers=%d seconds=%g reps=%d submitted=%d "+
		"completed=%d discarded=0 max_cpu=%d threads_end=%d back_ms=-1.0 status=%s\n",
		*mode, *shape, workers, workers, *seconds, *reps, submitted, completed,
		atomic.LoadInt32(&maxRunning), osThreads(), status)
	if status != "ok" {
		os.Exit(4)
	}
}
