package config

import (
	"strings"
	"testing"
	"time"
)

const issueServe = `listen: 127.0.0.1:8080
kubernetes:                 # leave out to run as a history server only (next issue)
  namespaces: [default]     # or all_namespaces: true
  kubeconfig: ~/.kube/config  # optional: else $KUBECONFIG, else in-cluster
store:
  sqlite: ./deploywatch.db  # the default; or postgres_dsn_env: DEPLOYWATCH_DSN
  retention: 90d
leader_election:
  enabled: false            # true needs PostgreSQL
  namespace: deploywatch
defaults:                   # the CLI's deploywatch.yaml schema without target
  phases: {warmup: 5s, monitor: 40s, interval: 2s}
  on_failure: rollback
`

func TestServeIssueExample(t *testing.T) {
	s, err := LoadServe([]byte(issueServe), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if s.Store.Retention.D() != 90*24*time.Hour || s.Store.SQLite != "./deploywatch.db" || s.Kubernetes.Namespaces[0] != "default" {
		t.Fatalf("%+v", s)
	}
	cm, err := ParseLayer([]byte("phases:\n  monitor: 2m\nchecks:\n  - {name: up, query: 'min(up{$selector})', fail: '< 1'}\nmetrics:\n  prometheus: {url: 'http://prom:9090'}\n  selector: 'job=\"api\"'\n"), "ConfigMap shop/api-deploywatch")
	if err != nil {
		t.Fatal(err)
	}
	wl, err := WorkloadLayer("deployment shop/api", "shop", KindDeployment, "api", "api")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadLayers(s.DefaultsLayer, wl, cm)
	if err != nil {
		t.Fatal(err)
	}
	// Maps merge key by key: monitor from the ConfigMap, warm-up from the defaults.
	if cfg.Phases.Monitor.D() != 2*time.Minute || cfg.Phases.Warmup.D() != 5*time.Second || cfg.Service != "api" ||
		cfg.Target.Kubernetes.Deployment != "api" || cfg.Target.Kubernetes.Namespace != "shop" {
		t.Fatalf("merged %+v %+v", cfg.Phases, cfg.Target.Kubernetes)
	}
	if len(cfg.Checks) != 1 || cfg.Checks[0].Name != "up" {
		t.Fatalf("checks %+v: the ConfigMap's list replaces the default", cfg.Checks)
	}
}

func TestServeProblems(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"leader election on sqlite", "kubernetes: {namespaces: [a]}\nleader_election: {enabled: true}\n", "serve.yaml:2:28: leader_election.enabled: leader election needs a store every replica shares"},
		{"both namespace forms", "kubernetes: {namespaces: [a], all_namespaces: true}\n", "kubernetes.namespaces: set namespaces or all_namespaces, not both"},
		{"a bad default", "defaults:\n  phases: {monitor: 5 minutes}\n", `serve.yaml:2:21: defaults.phases.monitor: "5 minutes" is not a duration`},
		{"an unknown default", "defaults:\n  on_falure: rollback\n", `serve.yaml:2:3: defaults.on_falure: unknown field (did you mean "on_failure"?)`},
		{"a default that cannot be", "defaults:\n  checks:\n    - {name: x, query: 'up', fail: '> 1'}\n", "serve.yaml:3:5: defaults.checks: checks need a metrics section"},
		{"service in the defaults", "defaults: {service: api}\n", "defaults.service: set by each workload"},
		{"days in retention", "store: {retention: 30m}\n", "store.retention: 30m is too short"},
		{"unknown key", "lisen: :80\n", `unknown field (did you mean "listen"?)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadServe([]byte(c.yaml), "serve.yaml")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestLayerProblemsNameTheirLayer(t *testing.T) {
	s, err := LoadServe([]byte(issueServe), "serve.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wl, _ := WorkloadLayer("deployment shop/api", "shop", KindDeployment, "api", "api")
	for _, c := range []struct{ cm, want string }{
		{"phases:\n  monitor: soon\n", `ConfigMap shop/api:2:12: phases.monitor: "soon" is not a duration`},
		{"checks:\n  - {name: up, query: 'up{', fail: '< 1'}\n", "ConfigMap shop/api"},
		{"phases:\n  monitor: 1s\n", "ConfigMap shop/api:2:12: phases.monitor: 1s is shorter than one interval (2s)"},
	} {
		cm, err := ParseLayer([]byte(c.cm), "ConfigMap shop/api")
		if err != nil {
			t.Fatal(err)
		}
		_, err = LoadLayers(s.DefaultsLayer, wl, cm)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.cm, err, c.want)
		}
	}
}
