package compat

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ipcgo/frame"
	"ipcgo/internal/cserver"
	"ipcgo/ipc"
)

// childEnv makes the test binary a stress worker process (see TestMain).
const childEnv = "IPC_GO_STRESS_CHILD"

// stressPlan is one process's share of the load on one server.
type stressPlan struct {
	transport      string // "socket" or "shm"
	addr           string // socket path or shm base name
	clients        int    // shm: the server's client count
	proc           int    // process number, part of every message
	poolSize       int    // cgo clients in the pool
	poolGoroutines int    // goroutines sharing the pool
	goClients      int    // socket only: goroutines with a pure-Go client each
	rounds         int    // round trips per goroutine
}

func (p stressPlan) encode() string {
	return strings.Join([]string{p.transport, p.addr, strconv.Itoa(p.clients),
		strconv.Itoa(p.proc), strconv.Itoa(p.poolSize), strconv.Itoa(p.poolGoroutines),
		strconv.Itoa(p.goClients), strconv.Itoa(p.rounds)}, "|")
}

func decodePlan(s string) (stressPlan, error) {
	f := strings.Split(s, "|")
	if len(f) != 8 {
		return stressPlan{}, fmt.Errorf("bad plan %q", s)
	}
	n := make([]int, 6)
	for i := range n {
		v, err := strconv.Atoi(f[i+2])
		if err != nil {
			return stressPlan{}, fmt.Errorf("bad plan %q: %v", s, err)
		}
		n[i] = v
	}
	return stressPlan{f[0], f[1], n[0], n[1], n[2], n[3], n[4], n[5]}, nil
}

// Message sizes the stress load draws from; 256 KiB now and then.
var stressSizes = []int{0, 1, 8, 64, 255, 256, 1000, 4096, 16384, 65536}

func stressSize(rng *rand.Rand) int {
	if rng.Intn(50) == 0 {
		return 256 << 10
	}
	return stressSizes[rng.Intn(len(stressSizes))]
}

// runStress runs plan and returns the number of checked round trips and up
// to 10 failures.
func runStress(plan stressPlan) (int64, []error) {
	var done atomic.Int64
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, err)
		}
	}

	pool, err := ipc.NewPool(plan.poolSize, func() (*ipc.Client, error) {
		if plan.transport == "shm" {
			return ipc.NewShmClient(plan.addr, plan.clients)
		}
		return ipc.NewSocketClient(plan.addr)
	})
	if err != nil {
		return 0, []error{fmt.Errorf("proc %d: pool of %d %s clients: %w", plan.proc, plan.poolSize, plan.transport, err)}
	}
	defer pool.Close()

	var wg sync.WaitGroup
	worker := func(g int, rt func(msg []byte) ([]byte, error)) {
		defer wg.Done()
		rng := rand.New(rand.NewSource(int64(plan.proc)<<16 | int64(g)))
		for r := 0; r < plan.rounds; r++ {
			seq := uint64(plan.proc)<<48 | uint64(g)<<32 | uint64(r)
			msg := pattern(stressSize(rng), seq)
			got, err := rt(msg)
			if err == nil && !bytes.Equal(got, msg) {
				err = sameBytes(got, msg)
			}
			if err != nil {
				fail(fmt.Errorf("proc %d goroutine %d round %d (%d bytes): %w", plan.proc, g, r, len(msg), err))
				return
			}
			done.Add(1)
		}
	}
	for g := 0; g < plan.poolGoroutines; g++ {
		wg.Add(1)
		reply := make([]byte, 1<<20)
		go worker(g, func(msg []byte) ([]byte, error) {
			n, err := pool.RoundTrip(msg, reply, timeout)
			return reply[:n], err
		})
	}
	for g := 0; g < plan.goClients; g++ {
		c, err := frame.Dial(plan.addr)
		if err != nil {
			fail(fmt.Errorf("proc %d: pure-Go client: %w", plan.proc, err))
			break
		}
		defer c.Close()
		wg.Add(1)
		go worker(plan.poolGoroutines+g, func(msg []byte) ([]byte, error) {
			return c.RoundTrip(msg, timeout)
		})
	}
	wg.Wait()
	return done.Load(), errs
}

// runStressChild is the body of a worker process: exit 0 when every reply
// was right.
func runStressChild(spec string) int {
	plan, err := decodePlan(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, errs := runStress(plan)
	for _, err := range errs {
		fmt.Fprintln(os.Stderr, err)
	}
	if len(errs) > 0 {
		return 1
	}
	fmt.Printf("proc %d: %d round trips ok\n", plan.proc, n)
	return 0
}

// startChild re-executes this test binary as a worker for plan.
func startChild(t *testing.T, plan stressPlan) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+plan.encode())
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

// waitChild waits up to limit, killing the child past it.
func waitChild(cmd *exec.Cmd, limit time.Duration) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		return err
	case <-time.After(limit):
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("killed after %v", limit)
	}
}

// TestStress: for each transport, one C server, many goroutines over a pool
// of cgo clients (and pure-Go clients on the socket) in this process plus
// worker processes doing the same, all at once; every reply is checked.
func TestStress(t *testing.T) {
	const children = 2
	rounds := 300
	if instrumented || testing.Short() {
		rounds = 60
	}
	for _, transport := range []string{"socket", "shm"} {
		transport := transport
		t.Run(transport, func(t *testing.T) {
			var s *cserver.Server
			plan := stressPlan{transport: transport, rounds: rounds}
			if transport == "shm" {
				s = cserver.StartShm(t, 16)
				plan.addr, plan.clients = s.Shm, s.Clients
			} else {
				s = cserver.StartSocket(t, 0)
				plan.addr = s.Socket
			}
			// This process: 4 pooled cgo clients under 16 goroutines, and 4
			// pure-Go clients (socket). Each child: 2 pooled under 8, and 2.
			goClients := func(n int) int {
				if transport == "socket" {
					return n
				}
				return 0
			}
			type child struct {
				cmd *exec.Cmd
				out *bytes.Buffer
			}
			var kids []child
			for i := 1; i <= children; i++ {
				p := plan
				p.proc, p.poolSize, p.poolGoroutines, p.goClients = i, 2, 8, goClients(2)
				cmd, out := startChild(t, p)
				kids = append(kids, child{cmd, out})
			}
			start := time.Now()
			p := plan
			p.proc, p.poolSize, p.poolGoroutines, p.goClients = 0, 4, 16, goClients(4)
			n, errs := runStress(p)
			for _, err := range errs {
				t.Error(err)
			}
			for i, k := range kids {
				if err := waitChild(k.cmd, 5*time.Minute); err != nil {
					t.Errorf("worker process %d: %v\n%s", i+1, err, k.out)
				} else {
					t.Logf("worker process %d: %s", i+1, strings.TrimSpace(k.out.String()))
				}
			}
			want := int64(rounds * (16 + goClients(4)))
			if n != want {
				t.Errorf("this process: %d checked round trips, want %d", n, want)
			}
			t.Logf("%s: this process %d round trips + %d worker processes, in %v",
				s.Describe(), n, children, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runStressChild(spec))
	}
	os.Exit(m.Run())
}
