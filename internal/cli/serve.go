package cli

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
	"github.com/deploywatch/deploywatch/internal/server"
	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/postgres"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
)

func (a *app) serveCommand() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "serve -f serve.yaml",
		Short: "Watch every opted-in workload of the cluster, keep the history, fail over",
		Long: `serve runs in the cluster (or beside it, with a kubeconfig). Every change of the
pod template of a Deployment, StatefulSet or DaemonSet labelled
deploywatch.dev/watch=true starts a watch with the same engine, config and
verdicts as 'deploywatch watch'; each watch is kept in the store as it goes,
so that another replica can take it up. Several replicas elect a leader
through a Kubernetes Lease (leader_election, with PostgreSQL).

It serves /health/live, /health/ready, /health/info and /metrics.`,
		Example: `  deploywatch serve -f serve.yaml`,
		Args:    usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.serve(cmd.Context(), file)
		},
	}
	c.Flags().StringVarP(&file, "file", "f", "serve.yaml", "serve's config file")
	return c
}

func (a *app) serve(ctx context.Context, file string) error {
	log, err := a.logger()
	if err != nil {
		return err
	}
	cfg, err := config.LoadServeFile(file)
	if err != nil {
		return err
	}
	st, err := a.openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	var rc *rest.Config
	if k := cfg.Kubernetes; k != nil {
		path := k.Kubeconfig
		if strings.HasPrefix(path, "~/") {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, path[2:])
		} else if path != "" && !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(cfg.Path), path)
		}
		if rc, err = kube.RESTConfig(kube.ClientOptions{Kubeconfig: path, Context: k.Context}); err != nil {
			return usagef("kubernetes: %v", err)
		}
	}
	identity, _ := a.env("DEPLOYWATCH_IDENTITY")
	srv, err := server.New(server.Options{Config: cfg, Store: st, REST: rc, Identity: identity, Env: a.env, Logger: log, Version: buildVersion()})
	var ce *server.ConfigError
	if errors.As(err, &ce) {
		return usagef("%s: %v", cfg.Path, ce.Err)
	}
	if err != nil {
		return err
	}
	if err := srv.Run(ctx); err != nil {
		if errors.Is(err, server.ErrPermissions) {
			return &usageError{err}
		}
		return err
	}
	return nil
}

// openStore opens the store serve.yaml names. A PostgreSQL DSN comes from
// the environment or a file: it holds a password.
func (a *app) openStore(ctx context.Context, cfg *config.Serve) (store.Store, error) {
	s := cfg.Store
	if !s.Postgres() {
		path := s.SQLite
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(cfg.Path), path)
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	var dsn string
	switch {
	case s.PostgresDSNEnv != "":
		v, ok := a.env(s.PostgresDSNEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return nil, usagef("%s: store.postgres_dsn_env: $%s is not set", cfg.Path, s.PostgresDSNEnv)
		}
		dsn = v
	default:
		path := s.PostgresDSNFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(filepath.Dir(cfg.Path), path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usagef("%s: store.postgres_dsn_file: %v", cfg.Path, err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	return st, nil
}
