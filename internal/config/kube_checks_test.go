package config

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/deploywatch/deploywatch/internal/promql"
)

// loadKubernetesWithMetrics loads a config watching the workload named by
// field (deployment, statefulset, daemonset) in namespace shop, with a
// Prometheus source.
func loadKubernetesWithMetrics(t *testing.T, field, name string) *Config {
	t.Helper()
	c, err := Load([]byte(fmt.Sprintf(`service: %[2]s
target:
  kubernetes:
    namespace: shop
    %[1]s: %[2]s
metrics:
  prometheus:
    url: http://127.0.0.1:9090
  selector: 'namespace="shop"'
`, field, name)), "k.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKubernetesResourceChecksEvaluate runs the Kubernetes CPU and memory
// checks' PromQL over cAdvisor- and kube-state-metrics-shaped series: only
// the pods of the judged ReplicaSet count, as a share of their limits.
func TestKubernetesResourceChecksEvaluate(t *testing.T) {
	c := loadKubernetesWithMetrics(t, "deployment", "api")
	queries := map[string]string{}
	for _, ch := range c.Checks {
		queries[ch.Name] = ch.Query
	}
	if queries["cpu"] == "" || queries["memory"] == "" || len(c.Skipped) != 0 {
		t.Fatalf("checks %v, skipped %v", queries, c.Skipped)
	}
	store := promql.NewStore(time.Hour.Milliseconds())
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	add := func(v float64, at time.Time, kv ...string) {
		if err := store.Append(labels.FromStrings(kv...), at.UnixMilli(), v); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i <= 60; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		// The new pod uses half a core of its 1-core limit; an old pod and a
		// pod of another Deployment use more and must not count.
		add(0.5*float64(i), at, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "api-7f9c-x1", "container", "api")
		add(0.9*float64(i), at, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "api-55aa-y2", "container", "api")
		add(2.0*float64(i), at, "__name__", "container_cpu_usage_seconds_total", "namespace", "shop", "pod", "apiary-7f9c-z3", "container", "api")
		add(1, at, "__name__", "kube_pod_container_resource_limits", "namespace", "shop", "pod", "api-7f9c-x1", "resource", "cpu", "container", "api")
		add(1, at, "__name__", "kube_pod_container_resource_limits", "namespace", "shop", "pod", "api-55aa-y2", "resource", "cpu", "container", "api")
		add(200<<20, at, "__name__", "container_memory_working_set_bytes", "namespace", "shop", "pod", "api-7f9c-x1", "container", "api")
		add(512<<20, at, "__name__", "kube_pod_container_resource_limits", "namespace", "shop", "pod", "api-7f9c-x1", "resource", "memory", "container", "api")
	}
	eng := promql.NewEngine(store, promql.EngineOptions{})
	vars := Vars{Window: 30 * time.Second, Platform: map[string]string{VarNamespace: "shop", VarDeployment: "api", VarPodTemplateHash: "7f9c"}}
	for name, want := range map[string]float64{"cpu": 0.5, "memory": 200.0 / 512} {
		expr, err := Expand(queries[name], vars)
		if err != nil {
			t.Fatal(err)
		}
		v, err := eng.Query(context.Background(), expr, t0.Add(60*time.Second))
		if err != nil || len(v) != 1 {
			t.Fatalf("%s: %v %v\n%s", name, v, err, expr)
		}
		if got := v[0].Value; got < want-0.001 || got > want+0.001 {
			t.Errorf("%s = %g, want %g (only the new pods, as a share of their limits)", name, got, want)
		}
		if !strings.Contains(expr, `pod=~"api-7f9c-.*"`) {
			t.Errorf("%s does not select the new pods: %s", name, expr)
		}
	}
}

func TestKubernetesWorkloadKinds(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		kind, wl     string
		problem      string
	}{
		{"deployment", "deployment: api", KindDeployment, "api", ""},
		{"statefulset", "statefulset: db", KindStatefulSet, "db", ""},
		{"daemonset", "daemonset: agent", KindDaemonSet, "agent", ""},
		{"none", "restart_limit: 2", "", "", "k.yaml:4:5: target.kubernetes.deployment: required: the workload to watch (deployment, statefulset or daemonset)"},
		{"two", "deployment: api\n    statefulset: db", "", "", "target.kubernetes.statefulset: watch one workload per config: deployment and statefulset are both set"},
		{"bad name", "daemonset: Agent_1", "", "", `target.kubernetes.daemonset: "Agent_1" is not a DaemonSet name`},
		{"zero rollback timeout", "deployment: api\n    timeouts:\n      rollback: 0s", "", "", "k.yaml:7:17: target.kubernetes.timeouts.rollback: must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load([]byte("service: api\ntarget:\n  kubernetes:\n    namespace: shop\n    "+tc.target+"\n"), "k.yaml")
			if tc.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tc.problem) {
					t.Fatalf("error %v, want %q", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if kind, name := c.Target.Kubernetes.Workload(); kind != tc.kind || name != tc.wl {
				t.Errorf("workload %s %s, want %s %s", kind, name, tc.kind, tc.wl)
			}
		})
	}
}

// TestStatefulSetResourceChecksSelectPodsByName: StatefulSet pod names
// carry an ordinal, not the revision hash, so the checks select the judged
// version's pods through $pods.
func TestStatefulSetResourceChecksSelectPodsByName(t *testing.T) {
	c := loadKubernetesWithMetrics(t, "statefulset", "db")
	for _, ch := range c.Checks {
		if ch.Name != "cpu" && ch.Name != "memory" {
			continue
		}
		expr, err := Expand(ch.Query, Vars{Window: 30 * time.Second, Platform: map[string]string{VarNamespace: "shop", VarWorkload: "db", VarPods: "db-0|db-1"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(expr, `pod=~"db-0|db-1"`) {
			t.Errorf("%s does not select the judged pods by name: %s", ch.Name, expr)
		}
	}
}

// TestKubernetesExampleLoads keeps examples/kubernetes.yaml a valid config.
func TestKubernetesExampleLoads(t *testing.T) {
	c, err := LoadFile("../../examples/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if kind, name := c.Target.Kubernetes.Workload(); kind != KindDeployment || name != "api" {
		t.Errorf("workload %s %s", kind, name)
	}
}
