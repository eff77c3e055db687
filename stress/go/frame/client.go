package frame

import (
	"bufio"
	"net"
	"time"
)

// Client is a pure-Go client of an ipc socket server. Like the C client it is
// for one goroutine at a time. Unlike the C client it does not resynchronise
// after a timeout: a failed Send or Recv may leave half a frame on the
// stream, so after any error the Client must be closed.
type Client struct {
	// MaxMessage is the longest reply Recv accepts (DefaultMaxMessage after
	// Dial); a longer one fails with ErrTooLarge.
	MaxMessage int

	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the socket server at path.
func Dial(path string) (*Client, error) {
	conn, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	return &Client{MaxMessage: DefaultMaxMessage, conn: conn, r: bufio.NewReader(conn)}, nil
}

// Send writes msg as one frame; timeout 0 waits without limit.
func (c *Client) Send(msg []byte, timeout time.Duration) error {
	if err := c.conn.SetWriteDeadline(deadline(timeout)); err != nil {
		return err
	}
	return WriteFrame(c.conn, msg)
}

// Recv reads one reply; timeout 0 waits without limit. io.EOF means the
// server closed the connection between frames.
func (c *Client) Recv(timeout time.Duration) ([]byte, error) {
	if err := c.conn.SetReadDeadline(deadline(timeout)); err != nil {
		return nil, err
	}
	return ReadFrame(c.r, c.MaxMessage)
}

// RoundTrip sends msg and returns its reply; timeout bounds each half.
func (c *Client) RoundTrip(msg []byte, timeout time.Duration) ([]byte, error) {
	if err := c.Send(msg, timeout); err != nil {
		return nil, err
	}
	return c.Recv(timeout)
}

// Conn is the underlying connection, for tests that write raw bytes.
func (c *Client) Conn() net.Conn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func deadline(timeout time.Duration) time.Time {
	if timeout <= 0 {
		return time.Time{}
	}
	return time.Now().Add(timeout)
}
