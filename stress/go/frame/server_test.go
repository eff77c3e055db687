package frame

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"ipcgo/internal/shortdir"
)

const timeout = 10 * time.Second

func startEcho(t *testing.T, maxMessage int) *Server {
	t.Helper()
	s, err := Listen(shortdir.SocketPath(t), maxMessage, Echo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, s *Server) *Client {
	t.Helper()
	c, err := Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServer_EchoesEverySize(t *testing.T) {
	c := dial(t, startEcho(t, 0))
	for i, n := range []int{0, 1, 255, 256, 65535, 65536, 1 << 20} {
		msg := pattern(n, byte(i))
		got, err := c.RoundTrip(msg, timeout)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: echo differs", n)
		}
	}
}

func TestServer_AnswersPipelinedRequestsInOrder(t *testing.T) {
	c := dial(t, startEcho(t, 0))
	// All requests in one write, then all replies.
	var batch bytes.Buffer
	for i := 0; i < 100; i++ {
		WriteFrame(&batch, []byte(fmt.Sprint(i)))
	}
	if _, err := c.Conn().Write(batch.Bytes()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		got, err := c.Recv(timeout)
		if err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("reply %d: %q, %v", i, got, err)
		}
	}
}

func TestServer_RepliesToAFrameWhoseBytesTrickleIn(t *testing.T) {
	c := dial(t, startEcho(t, 0))
	var frame bytes.Buffer
	WriteFrame(&frame, []byte("slow"))
	// A whole frame and the first bytes of the next: the first reply must
	// still come while the second request is incomplete.
	WriteFrame(&frame, []byte("next"))
	raw := frame.Bytes()
	for _, b := range raw[:len(raw)-2] {
		if _, err := c.Conn().Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.Recv(timeout); err != nil || string(got) != "slow" {
		t.Fatalf("first reply: %q, %v", got, err)
	}
	if _, err := c.Conn().Write(raw[len(raw)-2:]); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Recv(timeout); err != nil || string(got) != "next" {
		t.Fatalf("second reply: %q, %v", got, err)
	}
}

func TestServer_DisconnectsAClientWhoseRequestIsOverTheLimit(t *testing.T) {
	s := startEcho(t, 1000)
	c := dial(t, s)
	if got, err := c.RoundTrip(pattern(1000, 1), timeout); err != nil || len(got) != 1000 {
		t.Fatalf("request of exactly the limit: len %d, %v", len(got), err)
	}
	if err := c.Send(pattern(1001, 2), timeout); err != nil && !errors.Is(err, syscall.EPIPE) &&
		!errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("send over the limit: %v", err)
	}
	if got, err := c.Recv(timeout); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after a request over the limit: %q, %v; want the connection closed", got, err)
	}
	// The server itself goes on.
	other := dial(t, s)
	if got, err := other.RoundTrip([]byte("still here"), timeout); err != nil || string(got) != "still here" {
		t.Fatalf("another client afterwards: %q, %v", got, err)
	}
}

func TestServer_ServesConcurrentClientsWithoutMixingReplies(t *testing.T) {
	s := startEcho(t, 0)
	const clients, rounds = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			c, err := Dial(s.Addr())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for r := 0; r < rounds; r++ {
				msg := []byte(fmt.Sprintf("client %d round %d %s", id, r, pattern(r*7, byte(id))))
				got, err := c.RoundTrip(msg, timeout)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, msg) {
					errs <- fmt.Errorf("client %d round %d: wrong reply", id, r)
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestServer_CloseDisconnectsClientsAndRemovesTheSocket(t *testing.T) {
	s := startEcho(t, 0)
	c := dial(t, s)
	if _, err := c.RoundTrip([]byte("x"), timeout); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if got, err := c.Recv(timeout); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("after server close: %q, %v; want EOF", got, err)
	}
	if _, err := os.Stat(s.Addr()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after close: %v", err)
	}
	if _, err := Dial(s.Addr()); err == nil {
		t.Fatal("dial after close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestServer_RunsTheHandlerOnEachRequest(t *testing.T) {
	s, err := Listen(shortdir.SocketPath(t), 0, func(req []byte) []byte {
		return append([]byte("re:"), req...)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := dial(t, s)
	if got, err := c.RoundTrip([]byte("q"), timeout); err != nil || string(got) != "re:q" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestClient_RecvTimesOutWithoutAReply(t *testing.T) {
	c := dial(t, startEcho(t, 0))
	start := time.Now()
	_, err := c.Recv(50 * time.Millisecond)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatalf("returned after %v, before the timeout", time.Since(start))
	}
}

func TestClient_RejectsAReplyOverItsLimit(t *testing.T) {
	c := dial(t, startEcho(t, 0))
	c.MaxMessage = 10
	if err := c.Send(pattern(11, 0), timeout); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(timeout); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}
