package ipc

import (
	"fmt"
	"sync"
	"time"
)

// Pool shares a fixed set of connected clients among any number of
// goroutines: RoundTrip holds one client for one request and its reply, so
// replies never cross between callers. Safe for concurrent use.
type Pool struct {
	idle chan *pooled
	size int // clients made; all of them are in idle or in use

	closeOnce sync.Once
	done      chan struct{}
}

type pooled struct {
	c *Client
	// broken: the last exchange failed, so the stream may still hold a late
	// reply; the client is reconnected before its next use.
	broken bool
}

// NewPool creates n clients with newClient and connects them. On error every
// client made so far is closed.
func NewPool(n int, newClient func() (*Client, error)) (*Pool, error) {
	if n <= 0 {
		return nil, fmt.Errorf("ipc: pool of %d clients", n)
	}
	p := &Pool{idle: make(chan *pooled, n), done: make(chan struct{})}
	for i := 0; i < n; i++ {
		c, err := newClient()
		if err == nil {
			if err = c.Connect(); err != nil {
				c.Close()
			}
		}
		if err != nil {
			p.Close()
			return nil, err
		}
		p.idle <- &pooled{c: c}
		p.size++
	}
	return p, nil
}

// RoundTrip sends req and receives its reply into reply, returning the reply
// length. timeout bounds the send and the receive each (0: no limit).
func (p *Pool) RoundTrip(req, reply []byte, timeout time.Duration) (int, error) {
	var pc *pooled
	select {
	case pc = <-p.idle:
	case <-p.done:
		return 0, closedError("pool")
	}
	defer func() { p.idle <- pc }()

	if pc.broken {
		pc.c.Disconnect()
		if err := pc.c.Connect(); err != nil {
			return 0, err
		}
		pc.broken = false
	}
	n, err := roundTrip(pc.c, req, reply, timeout)
	pc.broken = err != nil
	return n, err
}

func roundTrip(c *Client, req, reply []byte, timeout time.Duration) (int, error) {
	if err := c.Send(req, timeout); err != nil {
		return 0, err
	}
	return c.Recv(reply, timeout)
}

// Close waits for every client to come back, then closes them all. Calls
// that start after Close fail with ErrClosed. Idempotent.
func (p *Pool) Close() error {
	p.closeOnce.Do(func() {
		close(p.done)
		for i := 0; i < p.size; i++ {
			pc := <-p.idle
			pc.c.Close()
		}
	})
	return nil
}
