package storetest

import (
	"context"
	"database/sql"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlstore"
)

// DB is an empty database for the migration tests: a raw handle to
// migrate step by step, and how to open it as a store.
type DB struct {
	DB   *sql.DB
	Open func() (store.Store, error)
}

// Migrations checks that the schema reaches its newest version from an
// empty database and from every earlier version, keeping what was
// written: the upgrade path of every existing installation.
func Migrations(t *testing.T, d sqlstore.Dialect, migrations fs.FS, fresh func(t *testing.T) DB) {
	files, err := fs.Glob(migrations, "*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations: %v", err)
	}
	var versions []int64
	for _, f := range files {
		n, err := strconv.ParseInt(strings.SplitN(path.Base(f), "_", 2)[0], 10, 64)
		if err != nil {
			t.Fatalf("migration %s is not numbered: %v", f, err)
		}
		versions = append(versions, n)
	}
	newest := versions[len(versions)-1]
	for _, from := range append([]int64{0}, versions...) {
		t.Run("from version "+strconv.FormatInt(from, 10), func(t *testing.T) {
			ctx := context.Background()
			db := fresh(t)
			var kept string
			if from > 0 {
				if err := sqlstore.Migrate(ctx, db.DB, d, migrations, from); err != nil {
					t.Fatal(err)
				}
				// Every version has had the deploys table: a row written
				// then must survive the upgrade.
				kept = "written-at-" + strconv.FormatInt(from, 10)
				if _, err := db.DB.ExecContext(ctx, rebind(d, `INSERT INTO deploys (id, key, source, service, verdict, started_at, updated_at)
					VALUES (?, ?, 'cli', 'api', 'stable', ?, ?)`), kept, kept, time.Now().UnixNano(), time.Now().UnixNano()); err != nil {
					t.Fatal(err)
				}
			}
			s, err := db.Open()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := sqlstore.SchemaVersion(ctx, db.DB, d, migrations); err != nil || v != newest {
				t.Fatalf("schema version %d, want %d: %v", v, newest, err)
			}
			if kept != "" {
				if got, err := s.Deploy(ctx, kept); err != nil || got.Verdict != store.Stable {
					t.Fatalf("the deploy written at version %d: %+v, %v", from, got, err)
				}
			}
			if _, _, err := s.CreateDeploy(ctx, newDeploy("after-upgrade", t0)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func rebind(d sqlstore.Dialect, q string) string {
	if !d.Numbered {
		return q
	}
	n := 0
	var b strings.Builder
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
