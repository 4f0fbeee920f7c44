// Package sqlstore is the store over database/sql that the sqlite and
// postgres backends share: the same tables and queries, written once, with
// the few differences of each dialect (placeholders) and migrations run by
// goose from SQL embedded in each backend.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/deploywatch/deploywatch/internal/store"
)

// Dialect is what differs between the databases.
type Dialect struct {
	// Goose is the migration dialect.
	Goose goose.Dialect
	// Numbered placeholders ($1, $2) rather than ?.
	Numbered bool
}

// DB is a store over a database/sql handle.
type DB struct {
	db      *sql.DB
	dialect Dialect
	now     func() time.Time
	// stmts are the prepared statements of the hot reads, by their text.
	stmts sync.Map
}

var _ store.Store = (*DB)(nil)

// Open migrates db to the newest schema in migrations (a folder of goose
// SQL files) and returns the store.
func Open(ctx context.Context, db *sql.DB, d Dialect, migrations fs.FS) (*DB, error) {
	if err := Migrate(ctx, db, d, migrations, 0); err != nil {
		return nil, err
	}
	return &DB{db: db, dialect: d, now: time.Now}, nil
}

// Migrate brings the schema to version (0: the newest).
func Migrate(ctx context.Context, db *sql.DB, d Dialect, migrations fs.FS, version int64) error {
	p, err := goose.NewProvider(d.Goose, db, migrations)
	if err != nil {
		return fmt.Errorf("store migrations: %w", err)
	}
	if version == 0 {
		_, err = p.Up(ctx)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	if err != nil {
		return fmt.Errorf("migrating the store: %w", err)
	}
	return nil
}

// SchemaVersion is the schema version the database is at.
func SchemaVersion(ctx context.Context, db *sql.DB, d Dialect, migrations fs.FS) (int64, error) {
	p, err := goose.NewProvider(d.Goose, db, migrations)
	if err != nil {
		return 0, err
	}
	return p.GetDBVersion(ctx)
}

// q rewrites a query's ? placeholders for the dialect.
func (s *DB) q(query string) string {
	if !s.dialect.Numbered {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Times are kept as Unix nanoseconds: the same in both databases, and
// compared as numbers.
func nanos(t time.Time) int64 { return t.UnixNano() }

func nanosPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time { return time.Unix(0, n).UTC() }

func fromNullNanos(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromNanos(n.Int64)
	return &t
}

// NewID returns a new deploy id: 16 random bytes in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

const deployColumns = `id, key, source, service, environment, namespace, kind, workload, version, previous_version,
	revision, verdict, reason, triggered_by, started_at, detected_at, ended_at, rolled_back, rollback_ok, owner, updated_at, commit_time`

type scanner interface{ Scan(dest ...any) error }

func scanDeploy(r scanner, extra ...any) (store.Deploy, error) {
	var d store.Deploy
	var started, updated int64
	var detected, ended, commit sql.NullInt64
	dest := []any{&d.ID, &d.Key, &d.Source, &d.Service, &d.Environment, &d.Namespace, &d.Kind, &d.Workload, &d.Version,
		&d.PreviousVersion, &d.Revision, &d.Verdict, &d.Reason, &d.TriggeredBy, &started, &detected, &ended,
		&d.RolledBack, &d.RollbackOK, &d.Owner, &updated, &commit}
	if err := r.Scan(append(dest, extra...)...); err != nil {
		return d, err
	}
	d.StartedAt, d.UpdatedAt = fromNanos(started), fromNanos(updated)
	d.DetectedAt, d.EndedAt, d.CommitTime = fromNullNanos(detected), fromNullNanos(ended), fromNullNanos(commit)
	return d, nil
}

// CreateDeploy records d unless a deploy with its Key exists.
func (s *DB) CreateDeploy(ctx context.Context, d store.Deploy) (store.Deploy, bool, error) {
	if d.ID == "" {
		d.ID = NewID()
	}
	if d.Key == "" {
		d.Key = d.ID
	}
	if d.Verdict == "" {
		d.Verdict = store.InProgress
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO deploys (`+deployColumns+`, report, state)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`),
		d.ID, d.Key, d.Source, d.Service, d.Environment, d.Namespace, d.Kind, d.Workload, d.Version, d.PreviousVersion,
		d.Revision, d.Verdict, d.Reason, d.TriggeredBy, nanos(d.StartedAt), nanosPtr(d.DetectedAt), nanosPtr(d.EndedAt),
		d.RolledBack, d.RollbackOK, d.Owner, nanos(s.now()), nanosPtr(d.CommitTime), string(d.Report), string(d.State))
	if err != nil {
		return store.Deploy{}, false, fmt.Errorf("recording deploy %s: %w", d.Key, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return store.Deploy{}, false, err
	}
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+deployColumns+` FROM deploys WHERE key = ?`), d.Key)
	got, err := scanDeploy(row)
	if err != nil {
		return store.Deploy{}, false, fmt.Errorf("reading deploy %s: %w", d.Key, err)
	}
	return got, n == 1, nil
}

// Checkpoint saves a deploy's progress.
func (s *DB) Checkpoint(ctx context.Context, id string, p store.Progress) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE deploys SET verdict = ?, reason = ?, previous_version = ?, detected_at = ?,
		ended_at = ?, rolled_back = ?, rollback_ok = ?, owner = ?, updated_at = ?, report = ?, state = ? WHERE id = ?`),
		p.Verdict, p.Reason, p.PreviousVersion, nanosPtr(p.DetectedAt), nanosPtr(p.EndedAt), p.RolledBack, p.RollbackOK,
		p.Owner, nanos(s.now()), string(p.Report), string(p.State), id)
	if err != nil {
		return fmt.Errorf("saving deploy %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("saving deploy %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// AppendEvents adds events after the deploy's last one, in one
// transaction.
func (s *DB) AppendEvents(ctx context.Context, id string, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("events of deploy %s: %w", id, err)
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(MAX(seq), 0) FROM events WHERE deploy_id = ?`), id).Scan(&last); err != nil {
		return fmt.Errorf("events of deploy %s: %w", id, err)
	}
	for i, e := range events {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (deploy_id, seq, time, kind, data) VALUES (?, ?, ?, ?, ?)`),
			id, last+int64(i)+1, nanos(e.Time), e.Kind, string(e.Data)); err != nil {
			return fmt.Errorf("events of deploy %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("events of deploy %s: %w", id, err)
	}
	return nil
}

// PutEvents adds events with the sender's numbers; those the deploy has
// are left alone.
func (s *DB) PutEvents(ctx context.Context, id string, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("events of deploy %s: %w", id, err)
	}
	defer tx.Rollback()
	for _, e := range events {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO events (deploy_id, seq, time, kind, data) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (deploy_id, seq) DO NOTHING`), id, e.Seq, nanos(e.Time), e.Kind, string(e.Data)); err != nil {
			return fmt.Errorf("events of deploy %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("events of deploy %s: %w", id, err)
	}
	return nil
}

// AddLabel marks a deploy's verdict.
func (s *DB) AddLabel(ctx context.Context, l store.Label) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO labels (deploy_id, label, at, note, who, created)
		SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM deploys WHERE id = ?)`),
		l.DeployID, l.Label, nanos(l.At), l.Note, l.Who, nanos(s.now()), l.DeployID)
	if err != nil {
		return fmt.Errorf("labelling deploy %s: %w", l.DeployID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("labelling deploy %s: %w", l.DeployID, store.ErrNotFound)
	}
	return nil
}

// Labels returns the deploys' labels, oldest first.
func (s *DB) Labels(ctx context.Context, ids []string) (map[string][]store.Label, error) {
	out := map[string][]store.Label{}
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.db.QueryContext(ctx, s.q(`SELECT deploy_id, label, at, note, who, created FROM labels
			WHERE deploy_id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`) ORDER BY created`), args...)
		if err != nil {
			return nil, fmt.Errorf("labels: %w", err)
		}
		for rows.Next() {
			var l store.Label
			var at, created int64
			if err := rows.Scan(&l.DeployID, &l.Label, &at, &l.Note, &l.Who, &created); err != nil {
				rows.Close()
				return nil, err
			}
			l.At, l.Created = fromNanos(at), fromNanos(created)
			out[l.DeployID] = append(out[l.DeployID], l)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, err
		}
		rows.Close()
	}
	return out, nil
}

// Services lists the services, the most recently deployed first.
func (s *DB) Services(ctx context.Context) ([]store.Service, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT service, environment, COUNT(*), MAX(started_at) FROM deploys GROUP BY service, environment`)
	if err != nil {
		return nil, fmt.Errorf("services: %w", err)
	}
	defer rows.Close()
	byName := map[string]*store.Service{}
	for rows.Next() {
		var name, env string
		var n int
		var last int64
		if err := rows.Scan(&name, &env, &n, &last); err != nil {
			return nil, err
		}
		svc := byName[name]
		if svc == nil {
			svc = &store.Service{Name: name}
			byName[name] = svc
		}
		if env != "" {
			svc.Environments = append(svc.Environments, env)
		}
		svc.Deploys += n
		if t := fromNanos(last); t.After(svc.LastDeploy) {
			svc.LastDeploy = t
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := make([]store.Service, 0, len(byName))
	for _, svc := range byName {
		sort.Strings(svc.Environments)
		out = append(out, *svc)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastDeploy.Equal(out[j].LastDeploy) {
			return out[i].LastDeploy.After(out[j].LastDeploy)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Deploy returns one deploy with its report and state.
func (s *DB) Deploy(ctx context.Context, id string) (store.Deploy, error) {
	var report, state string
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+deployColumns+`, report, state FROM deploys WHERE id = ?`), id)
	d, err := scanDeploy(row, &report, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("deploy %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("deploy %s: %w", id, err)
	}
	d.Report, d.State = []byte(report), []byte(state)
	return d, nil
}

// Events returns a deploy's events after seq, in order.
func (s *DB) Events(ctx context.Context, id string, afterSeq int64) ([]store.Event, error) {
	rows, err := s.queryPrepared(ctx, `SELECT seq, time, kind, data FROM events WHERE deploy_id = ? AND seq > ? ORDER BY seq`, id, afterSeq)
	if err != nil {
		return nil, fmt.Errorf("events of deploy %s: %w", id, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at int64
		var data string
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &data); err != nil {
			return nil, err
		}
		e.Time, e.Data = fromNanos(at), []byte(data)
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListDeploys returns a page of deploys, newest first.
func (s *DB) ListDeploys(ctx context.Context, q store.Query) (store.Page, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = 50
	case limit > 500:
		limit = 500
	}
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	// In a fixed order: the text names the prepared statement.
	for _, f := range []struct{ col, v string }{{"service", q.Service}, {"environment", q.Environment}, {"namespace", q.Namespace}, {"verdict", q.Verdict}} {
		if f.v != "" {
			add(f.col+" = ?", f.v)
		}
	}
	if !q.Since.IsZero() {
		add("started_at >= ?", nanos(q.Since))
	}
	if !q.Until.IsZero() {
		add("started_at < ?", nanos(q.Until))
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(q.Cursor)
		if err != nil {
			return store.Page{}, err
		}
		where = append(where, "(started_at < ? OR (started_at = ? AND id < ?))")
		args = append(args, at, at, id)
	}
	query := `SELECT ` + deployColumns + ` FROM deploys`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY started_at DESC, id DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.queryPrepared(ctx, query, args...)
	if err != nil {
		return store.Page{}, fmt.Errorf("listing deploys: %w", err)
	}
	defer rows.Close()
	var page store.Page
	for rows.Next() {
		d, err := scanDeploy(rows)
		if err != nil {
			return store.Page{}, err
		}
		page.Deploys = append(page.Deploys, d)
	}
	if err := rows.Err(); err != nil {
		return store.Page{}, err
	}
	if len(page.Deploys) > limit {
		page.Deploys = page.Deploys[:limit]
		last := page.Deploys[limit-1]
		page.Next = encodeCursor(nanos(last.StartedAt), last.ID)
	}
	return page, nil
}

// ErrBadCursor is a cursor that no listing gave.
var ErrBadCursor = errors.New("not a cursor of this listing")

func encodeCursor(at int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at, 10) + ":" + id))
}

func decodeCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", ErrBadCursor
	}
	at, id, ok := strings.Cut(string(b), ":")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", ErrBadCursor
	}
	return n, id, nil
}

// InProgress returns the deploys being watched.
func (s *DB) InProgress(ctx context.Context) ([]store.Deploy, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+deployColumns+`, report, state FROM deploys WHERE verdict = ? ORDER BY started_at`), store.InProgress)
	if err != nil {
		return nil, fmt.Errorf("deploys in progress: %w", err)
	}
	defer rows.Close()
	var out []store.Deploy
	for rows.Next() {
		var report, state string
		d, err := scanDeploy(rows, &report, &state)
		if err != nil {
			return nil, err
		}
		d.Report, d.State = []byte(report), []byte(state)
		out = append(out, d)
	}
	return out, rows.Err()
}

// PutWorkload records a workload.
func (s *DB) PutWorkload(ctx context.Context, w store.Workload) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO workloads (namespace, kind, name, revision, revision_number, template, config_error, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (namespace, kind, name) DO UPDATE SET revision = excluded.revision, revision_number = excluded.revision_number,
			template = excluded.template, config_error = excluded.config_error, updated_at = excluded.updated_at`),
		w.Namespace, w.Kind, w.Name, w.Revision, w.RevisionNumber, w.Template, w.ConfigError, nanos(s.now()))
	if err != nil {
		return fmt.Errorf("recording workload %s/%s: %w", w.Namespace, w.Name, err)
	}
	return nil
}

// Workload returns what is known of a workload.
func (s *DB) Workload(ctx context.Context, namespace, kind, name string) (store.Workload, error) {
	w := store.Workload{Namespace: namespace, Kind: kind, Name: name}
	var updated int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT revision, revision_number, template, config_error, updated_at FROM workloads
		WHERE namespace = ? AND kind = ? AND name = ?`), namespace, kind, name).Scan(&w.Revision, &w.RevisionNumber, &w.Template, &w.ConfigError, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return w, fmt.Errorf("workload %s/%s: %w", namespace, name, store.ErrNotFound)
	}
	if err != nil {
		return w, fmt.Errorf("workload %s/%s: %w", namespace, name, err)
	}
	w.UpdatedAt = fromNanos(updated)
	return w, nil
}

// Prune deletes deploys that ended before the time, and their events.
func (s *DB) Prune(ctx context.Context, endedBefore time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("pruning: %w", err)
	}
	defer tx.Rollback()
	cutoff := nanos(endedBefore)
	for _, table := range []string{"events", "labels"} {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+table+` WHERE deploy_id IN (SELECT id FROM deploys WHERE ended_at IS NOT NULL AND ended_at < ?)`), cutoff); err != nil {
			return 0, fmt.Errorf("pruning %s: %w", table, err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM deploys WHERE ended_at IS NOT NULL AND ended_at < ?`), cutoff)
	if err != nil {
		return 0, fmt.Errorf("pruning deploys: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}

// Ping checks that the database answers.
func (s *DB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Close closes the database.
func (s *DB) Close() error {
	s.stmts.Range(func(_, v any) bool {
		_ = v.(*sql.Stmt).Close()
		return true
	})
	return s.db.Close()
}

// queryPrepared runs a read whose text is one of a few (the lists, the
// event streams), prepared once: parsing the SQL is most of a small
// read's cost.
func (s *DB) queryPrepared(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt).QueryContext(ctx, args...)
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		st = prev.(*sql.Stmt)
	}
	return st.QueryContext(ctx, args...)
}
