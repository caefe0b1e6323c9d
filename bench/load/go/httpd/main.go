// httpd: the Go servers of make bench-load's closed loop, answering the same
// requests as examples/httpd.c, standard library only:
//
//	GET /hash/N?work=K&wait=MS
//	  blocks MS ms (default 0), then answers the hex SHA-256 of "payload-N"
//	  hashed K times, each round hashing the previous 32-byte digest
//	  (default 250), with a "\n"; 400 for a malformed number or a work or
//	  wait above --max-work / --max-wait, 404 for other paths, 405 for
//	  other methods.
//
//	--mode goroutine  net/http as it comes: the handler, on the connection's
//	                  goroutine, does the work (Go's "a goroutine per request")
//	--mode pool       the handler passes the job over a channel of --queue
//	                  slots to --workers goroutines (the seed's pool; 0: one
//	                  per CPU) and waits for its answer; a full channel makes
//	                  the handler wait, as the seed's producer does
//
// --port 0 picks a free port; either way it prints "listening on
// 127.0.0.1:PORT" once it accepts. SIGINT / SIGTERM: stop accepting, finish
// what is in flight (at most 5 s), exit 0.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type job struct {
	n, work, wait uint64
	done          chan string
}

func digest(n, work uint64) string {
	d := sha256.Sum256(strconv.AppendUint([]byte("payload-"), n, 10))
	for k := uint64(1); k < work; k++ {
		d = sha256.Sum256(d[:])
	}
	return hex.EncodeToString(d[:]) + "\n"
}

func (j *job) run() string {
	if j.wait > 0 {
		time.Sleep(time.Duration(j.wait) * time.Millisecond) // the "database call"
	}
	return digest(j.n, j.work)
}

// num parses a decimal number of digits only, at most max.
func num(s string, max uint64) (uint64, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v <= max
}

func main() {
	addr := flag.String("addr", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 8080, "port (0: any free one)")
	mode := flag.String("mode", "goroutine", "goroutine or pool")
	workers := flag.Int("workers", 0, "pool goroutines (0: one per CPU)")
	queue := flag.Int("queue", 1024, "the pool's channel capacity")
	maxWork := flag.Uint64("max-work", 100000, "largest work accepted")
	maxWait := flag.Uint64("max-wait", 1000, "largest wait accepted, ms")
	flag.Parse()
	if *mode != "goroutine" && *mode != "pool" || *queue < 1 || *maxWork < 1 {
		fmt.Fprintln(os.Stderr, "httpd: bad options (see bench/load/go/httpd/main.go)")
		os.Exit(2)
	}
	if *workers == 0 {
		*workers = runtime.NumCPU()
	}

	var jobs chan *job
	if *mode == "pool" {
		jobs = make(chan *job, *queue)
		for w := 0; w < *workers; w++ {
			go func() {
				for j := range jobs {
					j.done <- j.run()
				}
			}()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if r.Method != http.MethodGet {
			http.Error(w, "only GET", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/hash/") {
			http.Error(w, "try GET /hash/N?work=K&wait=MS", http.StatusNotFound)
			return
		}
		j := &job{work: 250}
		var ok bool
		if j.n, ok = num(r.URL.Path[6:], ^uint64(0)); !ok {
			http.Error(w, "N must be a decimal number below 2^64", http.StatusBadRequest)
			return
		}
		q := r.URL.Query()
		if s, there := q["work"]; there {
			if j.work, ok = num(s[0], *maxWork); !ok || j.work == 0 {
				http.Error(w, fmt.Sprintf("work must be a number from 1 to %d (--max-work)",
					*maxWork), http.StatusBadRequest)
				return
			}
		}
		if s, there := q["wait"]; there {
			if j.wait, ok = num(s[0], *maxWait); !ok {
				http.Error(w, fmt.Sprintf("wait must be a number of ms from 0 to %d (--max-wait)",
					*maxWait), http.StatusBadRequest)
				return
			}
		}
		var body string
		if jobs == nil {
			body = j.run()
		} else {
			j.done = make(chan string, 1)
			jobs <- j
			body = <-j.done
		}
		w.Write([]byte(body))
	})

	ln, err := net.Listen("tcp", net.JoinHostPort(*addr, strconv.Itoa(*port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 60 * time.Second,
		IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8192}
	stopped := make(chan struct{})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		close(stopped)
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpd:", err)
		os.Exit(1)
	}
	<-stopped
}
