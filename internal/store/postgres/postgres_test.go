package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/storetest"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// One real PostgreSQL server for the package; a fresh database per test.
func TestConformance(t *testing.T) {
	pg := testenv.StartPostgres(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), pg.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	t.Run("migrations", func(t *testing.T) {
		storetest.Migrations(t, Dialect, Migrations(), func(t *testing.T) storetest.DB {
			dsn := pg.NewDatabase(t)
			db, err := OpenDB(dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return storetest.DB{DB: db, Open: func() (store.Store, error) { return Open(context.Background(), dsn) }}
		})
	})
}

// A DSN that cannot be parsed is refused without quoting it: it holds a
// password.
func TestDSNNeverInErrors(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cret-password@host:notaport/db")
	if err == nil || strings.Contains(err.Error(), "s3cret-password") {
		t.Fatalf("error %v", err)
	}
	_, err = Open(context.Background(), "postgres://u:s3cret-password@127.0.0.1:1/db?connect_timeout=1")
	if err == nil || strings.Contains(err.Error(), "s3cret-password") {
		t.Fatalf("error %v", err)
	}
}
