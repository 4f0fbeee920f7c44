package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(context.Background(), filepath.Join(t.TempDir(), "deploywatch.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestMigrations(t *testing.T) {
	storetest.Migrations(t, Dialect, Migrations(), func(t *testing.T) storetest.DB {
		path := filepath.Join(t.TempDir(), "deploywatch.db")
		db, err := OpenDB(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return storetest.DB{DB: db, Open: func() (store.Store, error) { return Open(context.Background(), path) }}
	})
}
