package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a server started by a test, stopped when the test ends.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startProcess(tb testing.TB, name string, cmd *exec.Cmd, logPath string) *process {
	tb.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		logf.Close()
		tb.Fatalf("starting %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	return p
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *process) logTail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Redis is a redis-server on loopback.
type Redis struct {
	Addr     string
	Password string
	dir      string
	tb       testing.TB
	proc     *process
}

// StartRedis starts a redis-server with no persistence. A non-empty
// password turns on requirepass.
func StartRedis(tb testing.TB, password string) *Redis {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		Missing(tb, "redis-server", "Debian package redis-server")
	}
	r := &Redis{Addr: FreeAddr(tb), Password: password, dir: tb.TempDir(), tb: tb}
	r.Start()
	tb.Cleanup(r.Stop)
	return r
}

// Start (re)starts the server on its address.
func (r *Redis) Start() {
	r.tb.Helper()
	_, port, _ := splitHostPort(r.Addr)
	args := []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir}
	if r.Password != "" {
		args = append(args, "--requirepass", r.Password)
	}
	r.proc = startProcess(r.tb, "redis-server", exec.Command("redis-server", args...), filepath.Join(r.dir, "redis.log"))
	if err := WaitTCP(r.Addr, 10*time.Second); err != nil {
		r.tb.Fatalf("redis did not start: %v\n%s", err, r.proc.logTail())
	}
}

// Stop stops the server; Start brings it back.
func (r *Redis) Stop() { r.proc.stop() }

// Postgres is a PostgreSQL server on loopback, in a fresh cluster.
type Postgres struct {
	// DSN connects as the superuser postgres, with trust authentication.
	DSN  string
	Addr string
	proc *process
	dir  string
	bin  string
	cred *syscall.Credential
	tb   testing.TB
	mu   sync.Mutex
	dbs  int
}

// PostgresBinDir finds PostgreSQL's server programs: $POSTGRES_BIN_DIR,
// else the newest /usr/lib/postgresql/*/bin.
func PostgresBinDir() (string, bool) {
	if d := os.Getenv("POSTGRES_BIN_DIR"); d != "" {
		return d, true
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) < versionOf(dirs[j]) })
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "postgres")); err == nil {
			return dirs[i], true
		}
	}
	return "", false
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// StartPostgres initialises a cluster in a temporary folder and starts it.
// PostgreSQL refuses to run as root, so as root it runs as the postgres
// user.
func StartPostgres(tb testing.TB) *Postgres {
	tb.Helper()
	bin, ok := PostgresBinDir()
	if !ok {
		Missing(tb, "postgresql", "Debian package postgresql")
	}
	dir, err := os.MkdirTemp("", "deploywatch-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			Missing(tb, "the postgres user", "Debian package postgresql creates it")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, out)
	}
	addr := FreeAddr(tb)
	p := &Postgres{DSN: fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr), Addr: addr, dir: dir, bin: bin, cred: cred, tb: tb}
	p.Start()
	tb.Cleanup(func() { p.proc.stop() })
	return p
}

// Start (re)starts the server on its address, with its data.
func (p *Postgres) Start() {
	p.tb.Helper()
	_, port, _ := splitHostPort(p.Addr)
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.dir, "data"), "-p", port, "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	p.proc = startProcess(p.tb, "postgres", cmd, filepath.Join(p.dir, "postgres.log"))
	if err := WaitTCP(p.Addr, 30*time.Second); err != nil {
		p.tb.Fatalf("postgres did not start: %v\n%s", err, p.proc.logTail())
	}
}

// Stop stops the server; Start brings it back with its data.
func (p *Postgres) Stop() { p.proc.stop() }

// NewDatabase creates an empty database on the server and returns its
// DSN.
func (p *Postgres) NewDatabase(tb testing.TB) string {
	tb.Helper()
	p.mu.Lock()
	p.dbs++
	name := fmt.Sprintf("test_%d", p.dbs)
	p.mu.Unlock()
	createdb := exec.Command(filepath.Join(p.bin, "createdb"), "-h", "127.0.0.1", "-p", portOf(p.Addr), "-U", "postgres", name)
	if out, err := createdb.CombinedOutput(); err != nil {
		tb.Fatalf("creating database %s: %v\n%s", name, err, out)
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", p.Addr, name)
}

func portOf(addr string) string {
	_, port, _ := splitHostPort(addr)
	return port
}
