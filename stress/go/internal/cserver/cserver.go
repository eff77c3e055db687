// Package cserver runs the C echo server (//stress/go:c_echo_server) in a
// child process for tests, and names the other C helpers.
package cserver

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ipcgo/internal/shortdir"
)

// Env vars set by stress/go/go_test.sh.
const (
	EchoServerEnv = "IPC_C_ECHO_SERVER"
	PingEnv       = "IPC_C_PING"
)

const startTimeout = 10 * time.Second

// Server is a running C echo server.
type Server struct {
	Socket  string // socket path, for a socket server
	Shm     string // base name, for a shared-memory server
	Clients int    // the shm server's client count

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// Binary is the path in env var name. Without it the test is skipped when
// run by a plain `go test` (nothing built the C helpers), and fails under
// Bazel (TEST_SRCDIR set), where go_test.sh always sets it.
func Binary(t testing.TB, name string) string {
	t.Helper()
	bin := os.Getenv(name)
	if bin != "" {
		return bin
	}
	if os.Getenv("TEST_SRCDIR") != "" {
		t.Fatalf("%s is not set by go_test.sh", name)
	}
	t.Skipf("%s is not set: bazel test //stress/go:go_test builds the C helpers and runs this", name)
	return ""
}

var nameSeq atomic.Int64

// nameSalt tells apart processes that share a pid: sandboxed test runs have
// pid namespaces of their own but one abstract-socket namespace.
var nameSalt = func() uint32 {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return uint32(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint32(b[:])
}()

// UniqueName is a shared-memory base name unique to this process and call.
func UniqueName(prefix string) string {
	return fmt.Sprintf("%s_%d_%08x_%d", prefix, os.Getpid(), nameSalt, nameSeq.Add(1))
}

// StartSocket starts a socket echo server in a new directory. maxMessage 0
// keeps the server's default (1 MiB).
func StartSocket(t testing.TB, maxMessage int) *Server {
	t.Helper()
	s := &Server{Socket: filepath.Join(shortdir.New(t), "echo.sock")}
	args := []string{"--socket", s.Socket}
	if maxMessage > 0 {
		args = append(args, "--max-message", strconv.Itoa(maxMessage))
	}
	s.start(t, args)
	return s
}

// StartShm starts a shared-memory echo server for clients clients.
func StartShm(t testing.TB, clients int) *Server {
	t.Helper()
	s := &Server{Shm: UniqueName("ipcgo"), Clients: clients}
	s.start(t, []string{"--shm", s.Shm, "--clients", strconv.Itoa(clients)})
	return s
}

// start runs the server, waits for its "ready" line and registers a cleanup
// that stops it with SIGTERM and expects a clean exit.
func (s *Server) start(t testing.TB, args []string) {
	t.Helper()
	s.cmd = exec.Command(Binary(t, EchoServerEnv), args...)
	s.cmd.Stderr = os.Stderr
	// Never outlive the test binary, even if it crashes.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", s.cmd.Args, err)
	}
	s.exited = make(chan struct{})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		// Wait closes stdout: only after the line was read.
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	select {
	case line := <-ready:
		if line != "ready" {
			t.Fatalf("%v printed %q instead of \"ready\"", s.cmd.Args, line)
		}
	case <-time.After(startTimeout):
		t.Fatalf("%v was not ready after %v", s.cmd.Args, startTimeout)
	}
}

// stop sends SIGTERM and waits; SIGKILL if the server does not exit.
func (s *Server) stop(t testing.TB) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("%v ignored SIGTERM for 10 s; killed", s.cmd.Args)
		return
	}
	if s.err != nil {
		t.Errorf("%v did not exit cleanly: %v", s.cmd.Args, s.err)
	}
}

// Exited reports whether the server process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Describe names the server's transport and address, for messages.
func (s *Server) Describe() string {
	if s.Socket != "" {
		return "socket " + s.Socket
	}
	return fmt.Sprintf("shm %s (%d clients)", s.Shm, s.Clients)
}
