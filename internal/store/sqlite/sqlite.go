// Package sqlite is the store in one SQLite file (pure Go, modernc), in
// WAL mode: the default for a single serve replica.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"net/url"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/deploywatch/deploywatch/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the schema's versions.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Dialect is SQLite's.
var Dialect = sqlstore.Dialect{Goose: goose.DialectSQLite3}

// Open opens (creating it if needed) the database file at path and
// migrates it to the newest schema.
func Open(ctx context.Context, path string) (*sqlstore.DB, error) {
	db, err := OpenDB(path)
	if err != nil {
		return nil, err
	}
	s, err := sqlstore.Open(ctx, db, Dialect, Migrations())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return s, nil
}

// OpenDB opens the file without migrating it: WAL, foreign keys, a wait
// of up to 5s for another writer's lock, and transactions that take the
// write lock when they begin (a read transaction that later writes could
// not wait for it: SQLite would answer SQLITE_BUSY at once).
func OpenDB(path string) (*sql.DB, error) {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite %s: %w", path, err)
	}
	return db, nil
}
