// A Go program using ipc: the cgo client (ipcgo/ipc, the C library through
// pkg-config) talks to a server written in pure Go (ipcgo/frame) over a Unix
// socket. README.md "Use it from your project" builds it in a module of its own.
package main

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"ipcgo/frame"
	"ipcgo/ipc"
)

func main() {
	dir, err := os.MkdirTemp("/tmp", "hello_ipc_go")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "echo.sock")

	server, err := frame.Listen(path, 0, frame.Echo) // 0: the 1 MiB default
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()

	c, err := ipc.NewSocketClient(path)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Connect(); err != nil {
		log.Fatal(err)
	}
	if err := c.Send([]byte("hello"), time.Second); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Recv(buf, time.Second)
	if err != nil || !bytes.Equal(buf[:n], []byte("hello")) {
		log.Fatalf("echo: %q, %v", buf[:n], err)
	}
	fmt.Printf("ipc %s: socket echo ok (Go client, Go server)\n", ipc.Version())
}
