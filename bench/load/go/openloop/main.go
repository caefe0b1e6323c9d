// openloop: the Go rows of make bench-load's open loop, the same generator
// as bench/load/openloop.c (read its top comment first): Poisson arrivals
// of jobs at --rate per second for --seconds, each job's sojourn measured
// from its scheduled arrival, arrivals the generator never got to and jobs
// unfinished after --drain counted with a lower bound, and the same RESULT
// and WINDOW lines on stdout. Standard library only.
//
//	openloop --row Go/GoroutinePerJob --rate R [opts]   a goroutine per job
//	openloop --row Go/WorkerPool --rate R [opts]        the seed's pool: a fixed
//	    set of goroutines ranging over a channel of --queue slots; the
//	    generator's send blocks while it is full
//	openloop --capacity [opts]    jobs/s of Go/WorkerPool, the generator flat out
//
// A job is --work K seed jobs (SHA-256 of "payload-n", crypto/sha256) back
// to back. The generator sleeps to each arrival in nanosleep(2) on a locked
// thread with a timer slack of 1 ns, as the C generator does (time.Sleep
// wakes up to a millisecond late here). It has a P of its own (GOMAXPROCS
// is the CPUs + 1 unless set), as the C generator is a thread of its own:
// with only the CPUs' Ps, jobs that never yield keep it from running for up
// to Go's 10 ms time slice. The pool still has one goroutine per CPU.
package main

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	subBits  = 5
	sub      = 1 << subBits
	maxExp   = 40
	nBuckets = sub + (maxExp-subBits+1)*sub
	nWin     = 64
	nShards  = 8
	seedJobs = 10000
)

type hist [nBuckets]uint64

func bucketOf(v uint64) int {
	if v < sub {
		return int(v)
	}
	e := 63 - bits.LeadingZeros64(v)
	if e > maxExp {
		return nBuckets - 1
	}
	return sub + (e-subBits)*sub + int(v>>(e-subBits)) - sub
}

func bucketMid(b int) float64 {
	if b < sub {
		return float64(b)
	}
	e, m := (b-sub)/sub+subBits, (b-sub)%sub
	return float64(uint64(sub+m)<<(e-subBits)) + float64(uint64(1)<<(e-subBits))/2
}

func quantile(h *hist, n uint64, q float64) float64 {
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for b := range h {
		if seen += h[b]; seen >= rank {
			return bucketMid(b)
		}
	}
	return bucketMid(nBuckets - 1)
}

// Sharded by arrival time, so that concurrent jobs mostly add to different
// cache lines; atomics because goroutines have no fixed thread.
type shard struct {
	done uint64
	_    [56]byte
	h    [nWin]hist
}

var (
	shards   [nShards]shard
	t0       time.Time
	windowNs uint64
	work     int
	stop     int32 // the RSS cap was hit
)

func now() uint64 { return uint64(time.Since(t0)) }

func windowOf(t uint64) int {
	if w := t / windowNs; w < nWin {
		return int(w)
	}
	return nWin - 1
}

func record(s *shard, sched, sojourn uint64) {
	atomic.AddUint64(&s.h[windowOf(sched)][bucketOf(sojourn)], 1)
}

func job(sched uint64) {
	var buf [32]byte
	n := int(sched / 64 % seedJobs)
	for i := 0; i < work; i++ {
		b := strconv.AppendInt(append(buf[:0], "payload-"...), int64(n+i), 10)
		sha256.Sum256(b)
	}
	t := now()
	s := &shards[(sched>>6)%nShards]
	var soj uint64
	if t > sched {
		soj = t - sched
	}
	record(s, sched, soj)
	atomic.AddUint64(&s.done, 1)
}

func jobsDone() (n uint64) {
	for i := range shards {
		n += atomic.LoadUint64(&shards[i].done)
	}
	return
}

func merge(out *hist, w int) (n uint64) { // w < 0: every window
	*out = hist{}
	lo, hi := w, w+1
	if w < 0 {
		lo, hi = 0, nWin
	}
	for s := range shards {
		for i := lo; i < hi; i++ {
			for b := range out {
				c := atomic.LoadUint64(&shards[s].h[i][b])
				out[b] += c
				n += c
			}
		}
	}
	return
}

func statusKB(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), key) {
			kb, _ := strconv.ParseInt(strings.Fields(sc.Text())[1], 10, 64)
			return kb
		}
	}
	return 0
}

// splitmix64 to a uniform in (0, 1], as the C generator draws.
var rng uint64 = 0x9e3779b97f4a7c15

func expo(mean float64) float64 {
	rng += 0x9e3779b97f4a7c15
	z := rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 1) * 0x1p-53
	return -math.Log(u) * mean
}

func sleepNs(d uint64) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

func main() {
	row := flag.String("row", "", "Go/GoroutinePerJob or Go/WorkerPool")
	rate := flag.Float64("rate", 0, "arrivals per second")
	seconds := flag.Float64("seconds", 5, "length of the phase")
	flag.IntVar(&work, "work", 100, "seed jobs per job")
	workers := flag.Int("workers", 0, "pool goroutines (0: $WPOOL_WORKERS, else GOMAXPROCS)")
	queue := flag.Int("queue", 1024, "the pool's channel capacity")
	window := flag.Float64("window", 1, "seconds per window")
	drainS := flag.Float64("drain", -1, "seconds to wait for the jobs (-1: = seconds)")
	maxRSSMB := flag.Int64("max-rss-mb", 4096, "stop generating past this VmRSS")
	list := flag.Bool("list", false, "print the rows")
	capacity := flag.Bool("capacity", false, "measure Go/WorkerPool's jobs/s, the generator flat out")
	flag.Parse()
	if *capacity {
		*row, *rate = "Go/WorkerPool", 0
	}
	if *list {
		fmt.Println("Go/GoroutinePerJob\nGo/WorkerPool")
		return
	}
	if *drainS < 0 {
		*drainS = *seconds
	}
	if (*rate <= 0 && !*capacity) || *seconds <= 0 || *window <= 0 || work < 1 || *queue < 1 {
		fmt.Fprintln(os.Stderr, "openloop: bad options (see bench/load/go/openloop/main.go)")
		os.Exit(2)
	}
	windowNs = uint64(*window * 1e9)
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	}
	if *workers == 0 {
		*workers = runtime.NumCPU()
		if v, err := strconv.Atoi(os.Getenv("WPOOL_WORKERS")); err == nil && v > 0 {
			*workers = v
		}
	}

	var submit func(uint64)
	threads := 0
	switch *row {
	case "Go/GoroutinePerJob":
		submit = func(s uint64) { go job(s) }
	case "Go/WorkerPool":
		ch := make(chan uint64, *queue)
		for w := 0; w < *workers; w++ {
			go func() {
				for s := range ch {
					job(s)
				}
			}()
		}
		submit = func(s uint64) { ch <- s }
		threads = *workers
	default:
		fmt.Fprintf(os.Stderr, "openloop: no row %q (--list)\n", *row)
		os.Exit(2)
	}

	// The generator keeps its own thread, so that its timer slack holds.
	runtime.LockOSThread()
	syscall.Syscall(syscall.SYS_PRCTL, 29 /* PR_SET_TIMERSLACK */, 1, 0)
	t0 = time.Now()
	var winRSS [nWin]int64
	samplerDone := make(chan struct{})
	samplerExit := make(chan struct{})
	go func() { // VmRSS every 100 ms into the window of wall time
		defer close(samplerExit)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-samplerDone:
				return
			case <-tick.C:
				kb := statusKB("VmRSS:")
				if w := windowOf(now()); kb > winRSS[w] {
					winRSS[w] = kb
				}
				if kb/1024 > *maxRSSMB {
					atomic.StoreInt32(&stop, 1)
				}
			}
		}
	}()

	var scheduled, admitted, unsent, undrained uint64
	var lag hist
	mean := 0.0 // flat out: every arrival due at once
	if *rate > 0 {
		mean = 1e9 / *rate
	}
	sched := expo(mean)
	end := uint64(*seconds * 1e9)
	stopAt := end // arrivals due before the end may be submitted 100 ms late
	if *rate > 0 {
		stopAt += 100e6
	}
	for t := uint64(0); sched < float64(end) && t < stopAt && atomic.LoadInt32(&stop) == 0; {
		t = now()
		if sched > float64(t) {
			if sched-float64(t) > 2000 {
				sleepNs(uint64(sched) - t - 1000)
			}
			continue
		}
		// Every arrival due by now, the clock read before each submit: the
		// lag is exact, and a generator far behind stops at the end.
		for sched <= float64(t) && sched < float64(end) {
			s := uint64(sched)
			if t = now(); t >= stopAt || atomic.LoadInt32(&stop) != 0 {
				break
			}
			lag[bucketOf(t-s)]++
			scheduled++
			submit(s)
			admitted++
			sched += expo(mean)
		}
	}
	stopped := now()
	if stopped < end {
		stopped = end
	}
	own := &shards[0]
	for *rate > 0 && sched < float64(end) {
		record(own, uint64(sched), stopped-uint64(sched))
		scheduled++
		unsent++
		sched += expo(mean)
	}
	deadline := time.Now().Add(time.Duration(*drainS * 1e9))
	for jobsDone() < admitted && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if d := jobsDone(); d < admitted {
		undrained = admitted - d
		atomic.AddUint64(&own.h[windowOf(end-1)][bucketOf(now()-end)], undrained)
	}
	close(samplerDone)
	<-samplerExit
	peak := statusKB("VmHWM:")
	if *capacity {
		el := time.Since(t0).Seconds()
		fmt.Printf("CAPACITY jobs_per_s=%.0f jobs=%d seconds=%.3f work=%d workers=%d drained=%t\n",
			float64(jobsDone())/el, jobsDone(), el, work, threads, undrained == 0)
		os.Exit(0)
	}

	var h hist
	n := merge(&h, -1)
	capped := "no"
	if atomic.LoadInt32(&stop) != 0 {
		capped = "rss-cap"
	}
	fmt.Printf("RESULT row=%s rate=%.0f work=%d threads=%d queue=%d seconds=%g "+
		"scheduled=%d admitted=%d shed=0 unsent=%d undrained=%d "+
		"p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f lag_p99_us=%.1f "+
		"hwm_kb=%d stopped=%s\n",
		*row, *rate, work, threads, *queue, *seconds, scheduled, admitted, unsent, undrained,
		quantile(&h, n, 0.5)/1e3, quantile(&h, n, 0.99)/1e3, quantile(&h, n, 0.999)/1e3,
		quantile(&h, n, 1)/1e3, quantile(&lag, scheduled-unsent, 0.99)/1e3, peak, capped)
	nwin := int(math.Ceil(*seconds / *window))
	if nwin > nWin {
		nwin = nWin
	}
	for w := 0; w < nwin; w++ {
		wn := merge(&h, w)
		fmt.Printf("WINDOW row=%s rate=%.0f i=%d t_s=%g count=%d p50_us=%.1f p99_us=%.1f "+
			"rss_kb=%d\n", *row, *rate, w, float64(w+1)**window, wn,
			quantile(&h, wn, 0.5)/1e3, quantile(&h, wn, 0.99)/1e3, winRSS[w])
	}
	os.Exit(0) // jobs still queued or running are left behind
}
