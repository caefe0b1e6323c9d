// Go's channels, the same three shapes as chan_bench.c: an unbuffered
// ping-pong round trip, and a capacity-128 channel of int with 1 sender and
// 1 receiver, then 4 and 4. Standard library only; run by run.sh as
// `go test -bench . -benchmem -count 5`.
package chanbench

import (
	"sync"
	"testing"
)

func BenchmarkPingPong(b *testing.B) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ping <- i
		<-pong
	}
	b.StopTimer()
	close(ping)
}

func buffered(b *testing.B, senders, receivers int) {
	c := make(chan int, 128)
	per := b.N / senders
	if per == 0 {
		per = 1
	}
	var sent, received sync.WaitGroup
	b.ResetTimer()
	for s := 0; s < senders; s++ {
		sent.Add(1)
		go func() {
			defer sent.Done()
			for i := 0; i < per; i++ {
				c <- i
			}
		}()
	}
	for r := 0; r < receivers; r++ {
		received.Add(1)
		go func() {
			defer received.Done()
			for range c {
			}
		}()
	}
	sent.Wait()
	close(c)
	received.Wait()
}

func BenchmarkBuffered128_1x1(b *testing.B) { buffered(b, 1, 1) }
func BenchmarkBuffered128_4x4(b *testing.B) { buffered(b, 4, 4) }
