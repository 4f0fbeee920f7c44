package health

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// SQL checks a database/sql pool with PingContext.
func SQL(db *sql.DB) Checker {
	return CheckerFunc(func(ctx context.Context) error { return db.PingContext(ctx) })
}

// SQLQuery checks a database by running query (e.g. "SELECT 1") and
// reading its rows, which proves more than a ping: the connection can run
// statements.
func SQLQuery(db *sql.DB, query string) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		rows, err := db.QueryContext(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
		}
		return rows.Err()
	})
}

// TCP checks that addr ("host:port") accepts connections.
func TCP(addr string) Checker {
	return CheckerFunc(func(ctx context.Context) error {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// HTTP checks that a GET of url answers 2xx. client may be nil for
// http.DefaultClient's transport.
func HTTP(url string, client *http.Client) Checker {
	if client == nil {
		client = &http.Client{}
	}
	return CheckerFunc(func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("%s answered %s", url, resp.Status)
		}
		return nil
	})
}

// RedisOption configures the Redis checker.
type RedisOption func(*redisCheck)

// RedisPassword authenticates with AUTH before PING (Redis 6 ACL users:
// RedisUser as well).
func RedisPassword(password string) RedisOption {
	return func(r *redisCheck) { r.password = password }
}

// RedisUser sets the ACL user name for AUTH.
func RedisUser(user string) RedisOption { return func(r *redisCheck) { r.user = user } }

type redisCheck struct {
	addr, user, password string
}

// Redis checks a Redis server at addr with PING, speaking the few bytes of
// RESP it needs rather than pulling a client library into every service.
func Redis(addr string, opts ...RedisOption) Checker {
	r := &redisCheck{addr: addr}
	for _, o := range opts {
		o(r)
	}
	return CheckerFunc(r.check)
}

func (r *redisCheck) check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	rd := bufio.NewReader(conn)
	if r.password != "" {
		args := []string{"AUTH", r.password}
		if r.user != "" {
			args = []string{"AUTH", r.user, r.password}
		}
		if err := redisCommand(conn, rd, args, "+OK"); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	return redisCommand(conn, rd, []string{"PING"}, "+PONG")
}

// redisCommand sends args as a RESP array and expects the simple string
// want.
func redisCommand(w io.Writer, rd *bufio.Reader, args []string, want string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	switch {
	case line == want:
		return nil
	case strings.HasPrefix(line, "-"):
		return errors.New(strings.TrimPrefix(line, "-"))
	default:
		if len(line) > 80 {
			line = line[:80]
		}
		return fmt.Errorf("unexpected reply %q", line)
	}
}
