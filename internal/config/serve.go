package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Serve is serve.yaml: what deploywatch serve shares across every workload
// it watches.
type Serve struct {
	// Listen is the HTTP address of the health endpoints, /metrics and the
	// API. Default :8080.
	Listen string `yaml:"listen"`
	// Kubernetes says which workloads to watch; without it serve is a
	// history server only.
	Kubernetes *ServeKubernetes `yaml:"kubernetes,omitempty"`
	Store      Store            `yaml:"store"`
	// LeaderElection lets several replicas run, one watching at a time.
	LeaderElection LeaderElection `yaml:"leader_election"`
	// API says who may read and write the history over HTTP.
	API API `yaml:"api"`
	// Audit tunes the judge's record on the dashboard.
	Audit Audit `yaml:"audit"`
	// Defaults are the CLI's deploywatch.yaml settings, without service and
	// target, that every watch starts from; a workload's ConfigMap merges
	// over them.
	Defaults yaml.Node `yaml:"defaults"`

	// Path is the file serve.yaml was read from.
	Path string `yaml:"-"`
	// DefaultsLayer is Defaults as a config layer.
	DefaultsLayer Layer `yaml:"-"`
	positions     map[string]position
}

// ServeKubernetes says where serve finds the workloads that opt in.
type ServeKubernetes struct {
	// Namespaces to watch; or AllNamespaces.
	Namespaces    []string `yaml:"namespaces,omitempty"`
	AllNamespaces bool     `yaml:"all_namespaces,omitempty"`
	// Kubeconfig is the kubeconfig file. Default: $KUBECONFIG, then the
	// in-cluster service account.
	Kubeconfig string `yaml:"kubeconfig,omitempty"`
	// Context is the kubeconfig context. Default: the current one.
	Context string `yaml:"context,omitempty"`
}

// Store is where serve keeps the history and the watches in progress.
type Store struct {
	// SQLite is the database file (the default, ./deploywatch.db).
	SQLite string `yaml:"sqlite,omitempty"`
	// PostgresDSNEnv and PostgresDSNFile give a PostgreSQL connection
	// string (which holds a password) from the environment or a file.
	PostgresDSNEnv  string `yaml:"postgres_dsn_env,omitempty"`
	PostgresDSNFile string `yaml:"postgres_dsn_file,omitempty"`
	// Retention prunes deploys older than this. Default 90d.
	Retention Duration `yaml:"retention"`
}

// Postgres reports whether the store is PostgreSQL.
func (s Store) Postgres() bool { return s.PostgresDSNEnv != "" || s.PostgresDSNFile != "" }

// LeaderElection makes replicas take turns through a Kubernetes Lease.
type LeaderElection struct {
	Enabled bool `yaml:"enabled"`
	// Namespace and Name of the Lease. Default deploywatch/deploywatch.
	Namespace string `yaml:"namespace"`
	Name      string `yaml:"name"`
	// LeaseDuration is how long a lease holds without renewal; the next
	// leader takes over within it after a leader dies. Default 15s.
	LeaseDuration Duration `yaml:"lease_duration"`
	// RenewDeadline is how long the leader keeps trying to renew before it
	// steps down. Default 10s.
	RenewDeadline Duration `yaml:"renew_deadline"`
	// RetryPeriod is how often candidates try. Default 2s.
	RetryPeriod Duration `yaml:"retry_period"`
}

// API is the HTTP API's access: bearer tokens with scopes. Writes always
// need a token; reads may be left open.
type API struct {
	// OpenRead lets anyone read the history (the dashboard, GET requests).
	OpenRead bool       `yaml:"open_read"`
	Tokens   []APIToken `yaml:"tokens,omitempty"`
}

// The scopes a token may have.
const (
	ScopeRead   = "read"
	ScopeIngest = "ingest"
	ScopeLabel  = "label"
)

// APIToken is one bearer token, from the environment or a file.
type APIToken struct {
	// Name names the token in logs and on labels it makes.
	Name      string   `yaml:"name"`
	Scopes    []string `yaml:"scopes"`
	TokenEnv  string   `yaml:"token_env,omitempty"`
	TokenFile string   `yaml:"token_file,omitempty"`
}

// Audit tunes the judge's record.
type Audit struct {
	// MissedWithin is how soon after a stable verdict a rollback of that
	// version shows a regression was missed. Default 24h.
	MissedWithin Duration `yaml:"missed_within"`
}

// DefaultServe returns the settings serve.yaml starts from.
func DefaultServe() Serve {
	return Serve{
		Listen: ":8080",
		Store:  Store{Retention: Duration(90 * 24 * time.Hour)},
		Audit:  Audit{MissedWithin: Duration(24 * time.Hour)},
		LeaderElection: LeaderElection{
			Namespace: "deploywatch", Name: "deploywatch",
			LeaseDuration: Duration(15 * time.Second), RenewDeadline: Duration(10 * time.Second), RetryPeriod: Duration(2 * time.Second),
		},
	}
}

// LoadServeFile reads and validates serve.yaml. The defaults are
// validated as a config of a placeholder workload, so that a mistake in
// them is found at start, not at the first deploy.
func LoadServeFile(path string) (*Serve, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		probs := &Problems{Path: path}
		probs.add(position{}, "", "cannot read serve.yaml: %v (give it with -f)", err)
		return nil, probs.err()
	}
	return LoadServe(data, path)
}

// LoadServe parses and validates serve.yaml.
func LoadServe(data []byte, path string) (*Serve, error) {
	s := DefaultServe()
	s.Path = path
	doc, err := DecodeStrict(data, path, &s, nil)
	if err != nil {
		return nil, err
	}
	s.positions = doc.positions
	bad := func(field, format string, args ...any) { doc.Problem(field, format, args...) }
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("listen", "%q: want host:port (or :port)", s.Listen)
	}
	if k := s.Kubernetes; k != nil {
		switch {
		case k.AllNamespaces && len(k.Namespaces) > 0:
			bad("kubernetes.namespaces", "set namespaces or all_namespaces, not both")
		case !k.AllNamespaces && len(k.Namespaces) == 0:
			bad("kubernetes.namespaces", "required: the namespaces to watch (or all_namespaces: true)")
		}
		for i, ns := range k.Namespaces {
			if !dnsLabelRE.MatchString(ns) || len(ns) > 63 {
				bad(fmt.Sprintf("kubernetes.namespaces[%d]", i), "%q is not a namespace name", ns)
			}
		}
	}
	st := s.Store
	switch {
	case st.Postgres() && st.SQLite != "":
		bad("store", "set sqlite or a PostgreSQL DSN (postgres_dsn_env, postgres_dsn_file), not both")
	case st.PostgresDSNEnv != "" && st.PostgresDSNFile != "":
		bad("store.postgres_dsn_env", "set postgres_dsn_env or postgres_dsn_file, not both")
	case st.PostgresDSNEnv != "" && !envRE.MatchString(st.PostgresDSNEnv):
		bad("store.postgres_dsn_env", "%q is not an environment variable name", st.PostgresDSNEnv)
	case !st.Postgres() && st.SQLite == "":
		s.Store.SQLite = "./deploywatch.db"
	}
	if st.Retention < Duration(time.Hour) {
		bad("store.retention", "%s is too short to keep a history: at least 1h", FormatDuration(st.Retention.D()))
	}
	le := s.LeaderElection
	if le.Enabled {
		if !s.Store.Postgres() {
			bad("leader_election.enabled", "leader election needs a store every replica shares: set store.postgres_dsn_env (SQLite is one replica's file)")
		}
		if s.Kubernetes == nil {
			bad("leader_election.enabled", "leader election elects the replica that watches Kubernetes: add a kubernetes section, or turn it off")
		}
		if !dnsLabelRE.MatchString(le.Namespace) {
			bad("leader_election.namespace", "%q is not a namespace name", le.Namespace)
		}
		if !dnsSubdomainRE.MatchString(le.Name) {
			bad("leader_election.name", "%q is not a Lease name", le.Name)
		}
		if le.RenewDeadline >= le.LeaseDuration || le.RetryPeriod >= le.RenewDeadline {
			bad("leader_election", "want retry_period < renew_deadline < lease_duration (got %s, %s, %s)",
				FormatDuration(le.RetryPeriod.D()), FormatDuration(le.RenewDeadline.D()), FormatDuration(le.LeaseDuration.D()))
		}
	}
	names := map[string]bool{}
	for i, tok := range s.API.Tokens {
		at := func(f string) string { return fmt.Sprintf("api.tokens[%d].%s", i, f) }
		switch {
		case tok.Name == "":
			bad(at("name"), "required: names the token in logs and on the labels it makes")
		case names[tok.Name]:
			bad(at("name"), "%q names another token too", tok.Name)
		}
		names[tok.Name] = true
		if len(tok.Scopes) == 0 {
			bad(at("scopes"), "required: read, ingest or label")
		}
		for j, sc := range tok.Scopes {
			if sc != ScopeRead && sc != ScopeIngest && sc != ScopeLabel {
				bad(fmt.Sprintf("api.tokens[%d].scopes[%d]", i, j), "%q: want read, ingest or label", sc)
			}
		}
		switch {
		case tok.TokenEnv == "" && tok.TokenFile == "":
			bad(at("token_env"), "required: the environment variable (or token_file) that holds the token")
		case tok.TokenEnv != "" && tok.TokenFile != "":
			bad(at("token_env"), "set token_env or token_file, not both")
		case tok.TokenEnv != "" && !envRE.MatchString(tok.TokenEnv):
			bad(at("token_env"), "%q is not an environment variable name", tok.TokenEnv)
		}
	}
	if err := doc.Err(); err != nil {
		return nil, err
	}
	if s.Defaults.Kind == 0 {
		s.Defaults = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	if s.Defaults.Kind != yaml.MappingNode {
		doc.Problem("defaults", "want a mapping of deploywatch.yaml settings")
		return nil, doc.Err()
	}
	s.DefaultsLayer = Layer{Path: path, root: &s.Defaults}
	for _, key := range []string{"service", "target"} {
		if s.DefaultsLayer.Has(key) {
			doc.Problem("defaults."+key, "set by each workload, not in the defaults")
		}
	}
	if err := doc.Err(); err != nil {
		return nil, err
	}
	// The defaults alone, over a placeholder workload, must make a config.
	placeholder, err := WorkloadLayer("the watched workload", "default", KindDeployment, "placeholder", "placeholder")
	if err != nil {
		return nil, err
	}
	if _, err := LoadLayers(s.DefaultsLayer, placeholder); err != nil {
		return nil, prefixFields(err, "defaults.")
	}
	return &s, nil
}

// WorkloadLayer is what a watched workload implies: its service name and
// its target.
func WorkloadLayer(path, namespace, kind, name, service string) (Layer, error) {
	field := strings.ToLower(kind)
	return LayerOf(path, map[string]any{
		"service": service,
		"target":  map[string]any{"kubernetes": map[string]any{"namespace": namespace, field: name}},
	})
}

// prefixFields puts prefix before each problem's field: a problem of the
// defaults reads defaults.checks[0].fail.
func prefixFields(err error, prefix string) error {
	probs, ok := err.(*Problems)
	if !ok {
		return err
	}
	for i := range probs.Items {
		if probs.Items[i].Field != "" {
			probs.Items[i].Field = prefix + probs.Items[i].Field
		}
	}
	return probs
}

// Resolve makes a path of the file relative to serve.yaml's folder.
func (s *Serve) Resolve(path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(s.Path), path)
}
