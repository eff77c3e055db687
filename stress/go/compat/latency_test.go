package compat

import (
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"ipcgo/internal/cserver"
)

const latencySize = 64

// percentiles of round-trip times, as c_ping prints them.
type percentiles struct{ p50, p90, p99, max time.Duration }

func (p percentiles) String() string {
	us := func(d time.Duration) string { return fmt.Sprintf("%8.2f", float64(d)/1e3) }
	return us(p.p50) + " " + us(p.p90) + " " + us(p.p99) + " " + us(p.max)
}

func measure(count int, ex exchanger) (percentiles, error) {
	msg := pattern(latencySize, 0)
	for i := 0; i < count/10; i++ { // warm-up
		if _, err := ex.roundTrip(msg); err != nil {
			return percentiles{}, err
		}
	}
	rtt := make([]time.Duration, count)
	for i := range rtt {
		msg[0] = byte(i) // a stale echo cannot pass the check
		start := time.Now()
		got, err := ex.roundTrip(msg)
		rtt[i] = time.Since(start)
		if err == nil {
			err = sameBytes(got, msg)
		}
		if err != nil {
			return percentiles{}, fmt.Errorf("round trip %d: %w", i, err)
		}
	}
	sort.Slice(rtt, func(i, j int) bool { return rtt[i] < rtt[j] })
	return percentiles{rtt[count/2], rtt[count*9/10], rtt[count*99/100], rtt[count-1]}, nil
}

// cPing runs the C client's loop (//stress/go:c_ping) and parses its line.
func cPing(t *testing.T, s *cserver.Server, count int) percentiles {
	t.Helper()
	args := []string{"--size", strconv.Itoa(latencySize), "--count", strconv.Itoa(count)}
	if s.Socket != "" {
		args = append(args, "--socket", s.Socket)
	} else {
		args = append(args, "--shm", s.Shm, "--clients", strconv.Itoa(s.Clients))
	}
	out, err := exec.Command(cserver.Binary(t, cserver.PingEnv), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("c_ping %v: %v\n%s", args, err, out)
	}
	fields := map[string]time.Duration{}
	for _, f := range strings.Fields(string(out)) {
		if k, v, ok := strings.Cut(f, "="); ok && strings.HasSuffix(k, "_ns") {
			ns, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("c_ping output %q: %v", out, err)
			}
			fields[k] = time.Duration(ns)
		}
	}
	p := percentiles{fields["p50_ns"], fields["p90_ns"], fields["p99_ns"], fields["max_ns"]}
	if p.p50 <= 0 || p.max < p.p50 {
		t.Fatalf("c_ping output %q has no percentiles", out)
	}
	return p
}

// TestLatency_RoundTrip64B prints the round-trip percentiles of the C
// client, the cgo client and the pure-Go client for 64-byte messages, one at
// a time, against the C echo server. Every echo is checked; the times are
// reported, never asserted.
func TestLatency_RoundTrip64B(t *testing.T) {
	count := 20000
	if instrumented || testing.Short() {
		count = 2000
	}
	var rows []string
	row := func(transport, client string, p percentiles) {
		rows = append(rows, fmt.Sprintf("%-6s %-12s %s", transport, client, p))
	}
	t.Run("socket", func(t *testing.T) {
		s := cserver.StartSocket(t, 0)
		row("socket", "C", cPing(t, s, count))
		p, err := measure(count, newCgoSocket(t, s.Socket))
		if err != nil {
			t.Fatalf("cgo client: %v", err)
		}
		row("socket", "Go (cgo)", p)
		p, err = measure(count, newGoClient(t, s.Socket))
		if err != nil {
			t.Fatalf("pure-Go client: %v", err)
		}
		row("socket", "Go (pure)", p)
	})
	t.Run("shm", func(t *testing.T) {
		s := cserver.StartShm(t, 4)
		row("shm", "C", cPing(t, s, count))
		p, err := measure(count, newCgoShm(t, s))
		if err != nil {
			t.Fatalf("cgo client: %v", err)
		}
		row("shm", "Go (cgo)", p)
	})
	note := ""
	if instrumented {
		note = " (instrumented build: not representative)"
	}
	t.Logf("round trips of %d B, %d per client, microseconds%s:\n%-6s %-12s %8s %8s %8s %8s\n%s",
		latencySize, count, note, "", "client", "p50", "p90", "p99", "max", strings.Join(rows, "\n"))
}
