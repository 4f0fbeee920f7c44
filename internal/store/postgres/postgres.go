// Package postgres is the store in PostgreSQL (pgx): the one several serve
// replicas share, with leader election.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/deploywatch/deploywatch/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the schema's versions.
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrations, "migrations")
	return sub
}

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{Goose: goose.DialectPostgres, Numbered: true}

// Open connects with dsn and migrates the database to the newest schema.
// Errors never quote the DSN: it holds a password.
func Open(ctx context.Context, dsn string) (*sqlstore.DB, error) {
	db, err := OpenDB(dsn)
	if err != nil {
		return nil, err
	}
	s, err := sqlstore.Open(ctx, db, Dialect, Migrations())
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return s, nil
}

// OpenDB opens a handle without migrating.
func OpenDB(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN: say only what is wrong.
		return nil, errors.New("postgres: the DSN cannot be parsed (want postgres://user:password@host:port/db or key=value pairs)")
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(10)
	return db, nil
}
