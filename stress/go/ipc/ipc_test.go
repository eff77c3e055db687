package ipc_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ipcgo/frame"
	"ipcgo/internal/shortdir"
	"ipcgo/ipc"
)

const timeout = 10 * time.Second

// The binding's own behaviour, against the pure-Go server (the C server is
// the compat package's business).

func startServer(t *testing.T, h frame.Handler) string {
	t.Helper()
	s, err := frame.Listen(shortdir.SocketPath(t), 0, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addr()
}

func connected(t *testing.T, path string) *ipc.Client {
	t.Helper()
	c, err := ipc.NewSocketClient(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	return c
}

// wantErrno checks that err is an *ipc.Error carrying errno, reachable with
// errors.Is and errors.As.
func wantErrno(t *testing.T, what string, err error, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Fatalf("%s: got %v, want %v", what, err, errno)
	}
	var ie *ipc.Error
	if !errors.As(err, &ie) || ie.Errno != errno {
		t.Fatalf("%s: %#v is not an *ipc.Error with %v", what, err, errno)
	}
}

func TestClient_ConnectWithoutServerIsENOENT(t *testing.T) {
	c, err := ipc.NewSocketClient(shortdir.SocketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantErrno(t, "connect", c.Connect(), syscall.ENOENT)
}

func TestClient_SecondConnectIsEISCONN(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	wantErrno(t, "second connect", c.Connect(), syscall.EISCONN)
}

func TestClient_SendAndRecvBeforeConnectAreENOTCONN(t *testing.T) {
	c, err := ipc.NewSocketClient(shortdir.SocketPath(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	wantErrno(t, "send", c.Send([]byte("x"), timeout), syscall.ENOTCONN)
	_, err = c.Recv(make([]byte, 8), timeout)
	wantErrno(t, "recv", err, syscall.ENOTCONN)
}

func TestNewSocketClient_PathTooLongIsEINVAL(t *testing.T) {
	_, err := ipc.NewSocketClient("/tmp/" + strings.Repeat("x", 200))
	wantErrno(t, "create", err, syscall.EINVAL)
	_, err = ipc.NewSocketClient("/tmp/a\x00b")
	wantErrno(t, "create with NUL", err, syscall.EINVAL)
}

func TestClient_EchoesEverySizeIncludingEmpty(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	buf := make([]byte, 1<<20+1)
	for i, n := range []int{0, 1, 255, 256, 65535, 65536, 1 << 20} {
		msg := bytes.Repeat([]byte{byte(i + 1)}, n)
		if err := c.Send(msg, timeout); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		got, err := c.Recv(buf, timeout)
		if err != nil || !bytes.Equal(buf[:got], msg) {
			t.Fatalf("recv %d: len %d, %v", n, got, err)
		}
	}
	// Empty and nil slices both work both ways.
	if err := c.Send(nil, timeout); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Recv(nil, timeout); n != 0 || err != nil {
		t.Fatalf("empty reply into a nil buffer: %d, %v", n, err)
	}
}

func TestClient_RecvTimeoutIsETIMEDOUTAndLeavesTheStreamInSync(t *testing.T) {
	release := make(chan struct{})
	c := connected(t, startServer(t, func(req []byte) []byte {
		if string(req) == "slow" {
			<-release
		}
		return req
	}))
	if err := c.Send([]byte("slow"), timeout); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	start := time.Now()
	_, err := c.Recv(buf, 20*time.Millisecond)
	wantErrno(t, "recv", err, syscall.ETIMEDOUT)
	if elapsed := time.Since(start); elapsed < 20*time.Millisecond {
		t.Fatalf("timed out after %v, before the timeout", elapsed)
	}
	var ie *ipc.Error
	if !errors.As(err, &ie) || !ie.Timeout() {
		t.Fatalf("%v: Timeout() is false", err)
	}
	close(release)
	n, err := c.Recv(buf, timeout)
	if err != nil || string(buf[:n]) != "slow" {
		t.Fatalf("late reply: %q, %v", buf[:n], err)
	}
}

func TestClient_ReplyLongerThanBufferIsEMSGSIZEAndDiscardedWhole(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	for _, m := range []string{"too long for the buffer", "fits"} {
		if err := c.Send([]byte(m), timeout); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8)
	_, err := c.Recv(buf, timeout)
	wantErrno(t, "recv", err, syscall.EMSGSIZE)
	n, err := c.Recv(buf, timeout)
	if err != nil || string(buf[:n]) != "fits" {
		t.Fatalf("next reply: %q, %v", buf[:n], err)
	}
}

func TestClient_ServerGoneIsECONNRESETEvenWithoutTimeout(t *testing.T) {
	s, err := frame.Listen(shortdir.SocketPath(t), 0, frame.Echo)
	if err != nil {
		t.Fatal(err)
	}
	c := connected(t, s.Addr())
	s.Close()
	_, err = c.Recv(make([]byte, 8), 0)
	wantErrno(t, "recv", err, syscall.ECONNRESET)
}

func TestClient_NegativeTimeoutIsEINVAL(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	wantErrno(t, "send", c.Send(nil, -time.Second), syscall.EINVAL)
}

func TestClient_DisconnectThenConnectAgain(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	c.Disconnect()
	c.Disconnect() // idempotent
	wantErrno(t, "send after disconnect", c.Send([]byte("x"), timeout), syscall.ENOTCONN)
	if err := c.Connect(); err != nil {
		t.Fatal(err)
	}
	if err := c.Send([]byte("again"), timeout); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := c.Recv(buf, timeout); err != nil || string(buf[:n]) != "again" {
		t.Fatalf("%q, %v", buf[:n], err)
	}
}

func TestClient_CallsAfterCloseAreErrClosed(t *testing.T) {
	c := connected(t, startServer(t, frame.Echo))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	for name, err := range map[string]error{
		"connect": c.Connect(),
		"send":    c.Send(nil, 0),
	} {
		if !errors.Is(err, ipc.ErrClosed) {
			t.Errorf("%s: %v, want ErrClosed", name, err)
		}
	}
	if _, err := c.Recv(nil, 0); !errors.Is(err, ipc.ErrClosed) {
		t.Errorf("recv: %v, want ErrClosed", err)
	}
	c.Disconnect() // a no-op, not a crash
}

func TestError_MessageNamesTheCallAndTheErrno(t *testing.T) {
	err := error(&ipc.Error{Op: "recv", Errno: syscall.ETIMEDOUT})
	if got := err.Error(); got != "ipc recv: Connection timed out" {
		t.Fatalf("got %q", got)
	}
}

func TestPool_ManyGoroutinesGetTheirOwnReplies(t *testing.T) {
	path := startServer(t, frame.Echo)
	p, err := ipc.NewPool(3, func() (*ipc.Client, error) { return ipc.NewSocketClient(path) })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const goroutines, rounds = 12, 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			reply := make([]byte, 256)
			for r := 0; r < rounds; r++ {
				msg := []byte(fmt.Sprintf("goroutine %d round %d", g, r))
				n, err := p.RoundTrip(msg, reply, timeout)
				if err != nil || !bytes.Equal(reply[:n], msg) {
					errs <- fmt.Errorf("goroutine %d round %d: %q, %v", g, r, reply[:n], err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPool_ReconnectsAClientWhoseExchangeFailed(t *testing.T) {
	release := make(chan struct{})
	path := startServer(t, func(req []byte) []byte {
		if string(req) == "slow" {
			<-release
		}
		return req
	})
	p, err := ipc.NewPool(1, func() (*ipc.Client, error) { return ipc.NewSocketClient(path) })
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	reply := make([]byte, 16)
	_, err = p.RoundTrip([]byte("slow"), reply, 20*time.Millisecond)
	wantErrno(t, "slow round trip", err, syscall.ETIMEDOUT)
	close(release)
	// The late "slow" reply must not be taken for this request's.
	n, err := p.RoundTrip([]byte("fast"), reply, timeout)
	if err != nil || string(reply[:n]) != "fast" {
		t.Fatalf("after a timeout: %q, %v", reply[:n], err)
	}
}

func TestPool_CloseWaitsForClientsAndRefusesNewCalls(t *testing.T) {
	path := startServer(t, frame.Echo)
	p, err := ipc.NewPool(2, func() (*ipc.Client, error) { return ipc.NewSocketClient(path) })
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.Close()
	if _, err := p.RoundTrip(nil, nil, timeout); !errors.Is(err, ipc.ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
}

func TestNewPool_FailureClosesWhatItMadeAndReturnsTheError(t *testing.T) {
	path := shortdir.SocketPath(t) // no server
	_, err := ipc.NewPool(2, func() (*ipc.Client, error) { return ipc.NewSocketClient(path) })
	wantErrno(t, "pool", err, syscall.ENOENT)
}
