package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// FaultProxy is a TCP proxy between deploywatch and a server it talks to,
// which injects the faults of a real network: latency, a stall (the
// connection is accepted and never answered), resets, a response cut in
// the middle, an answer trickling in byte by byte, and a partition (all
// traffic dropped for a while). Faults apply to the connections open when
// they are set and to new ones.
type FaultProxy struct {
	// Addr is where clients connect (host:port).
	Addr string

	ln     net.Listener
	mu     sync.Mutex
	target string
	fault  Fault
	// healed is closed when a stall or a partition ends.
	healed chan struct{}
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// Fault is what the proxy does to the traffic.
type Fault struct {
	// Latency delays each chunk in both directions.
	Latency time.Duration
	// Stall holds every byte until the fault is cleared: the server looks
	// alive (connections are accepted) and never answers. A partition.
	Stall bool
	// CutAfter, when positive, resets each connection once this many bytes
	// of the answer have gone through.
	CutAfter int
	// ByteDelay sends the answer one byte at a time, this far apart.
	ByteDelay time.Duration
}

// StartFaultProxy proxies to target (host:port) until the test ends.
func StartFaultProxy(tb testing.TB, target string) *FaultProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &FaultProxy{Addr: ln.Addr().String(), ln: ln, target: target, healed: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(p.healed)
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.Close)
	return p
}

// Set replaces the fault (the zero Fault: none).
func (p *FaultProxy) Set(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wasStalled := p.fault.Stall
	p.fault = f
	switch {
	case f.Stall && !wasStalled:
		p.healed = make(chan struct{})
	case !f.Stall && wasStalled:
		close(p.healed)
	}
}

// Retarget sends new connections to another server (a restarted one on
// another port); open ones are reset.
func (p *FaultProxy) Retarget(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.Reset()
}

// Reset resets every open connection (TCP RST), as a crashed server or a
// load balancer dropping its state does.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Close stops the proxy and its connections.
func (p *FaultProxy) Close() {
	_ = p.ln.Close()
	p.Set(Fault{})
	p.Reset()
	p.wg.Wait()
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *FaultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *FaultProxy) current() (Fault, chan struct{}, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault, p.healed, p.target
}

func (p *FaultProxy) serve(client net.Conn) {
	defer p.wg.Done()
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()
	_, _, target := p.current()
	server, err := net.Dial("tcp", target)
	if err != nil {
		return // the client sees its connection closed, as with a server that is down
	}
	p.track(server, true)
	defer p.track(server, false)
	defer server.Close()
	done := make(chan struct{}, 2)
	go func() { p.pipe(server, client, false); done <- struct{}{} }()
	go func() { p.pipe(client, server, true); done <- struct{}{} }()
	<-done
	if tc, ok := client.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
}

// pipe copies src to dst, applying the fault; answer marks the server's
// side of the conversation.
func (p *FaultProxy) pipe(dst, src net.Conn, answer bool) {
	buf := make([]byte, 32<<10)
	sent := 0
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			for len(chunk) > 0 {
				f, healed, _ := p.current()
				if f.Stall {
					<-healed // held, as in a partition, until the fault is cleared
					continue
				}
				if f.Latency > 0 {
					time.Sleep(f.Latency)
				}
				size := len(chunk)
				if answer && f.ByteDelay > 0 {
					size = 1
					time.Sleep(f.ByteDelay)
				}
				if answer && f.CutAfter > 0 && sent+size > f.CutAfter {
					size = max(f.CutAfter-sent, 0)
					if size > 0 {
						_, _ = dst.Write(chunk[:size])
					}
					if tc, ok := dst.(*net.TCPConn); ok {
						_ = tc.SetLinger(0)
					}
					_ = dst.Close()
					_ = src.Close()
					return
				}
				if _, werr := dst.Write(chunk[:size]); werr != nil {
					return
				}
				sent += size
				chunk = chunk[size:]
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
