package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// podTraffic plays the pods of a test cluster (kwok's pods run nothing):
// each ready pod serves rps requests a second, failing by the share its
// image says, and every pod by the outage's share once an outage began.
// Prometheus finds the pods through service discovery, as on a real
// cluster, and scrapes each at /pods/NAMESPACE/NAME here, with the pod's
// namespace and name as target labels.
type podTraffic struct {
	cs     kubernetes.Interface
	addr   string
	rps    float64
	shares map[string]float64 // error share by image

	mu     sync.Mutex
	outage float64
	pods   map[string]*podCounts
}

type podCounts struct {
	total, bad float64
	// buckets counts the requests at or below each of latencyBounds.
	buckets []float64
	last    time.Time
}

// latencyBounds are the histogram's finite bucket bounds; fastShares and
// slowShares the share of requests that falls into each bucket (and none
// beyond): p99 about 50ms for every image but the slow one, about 475ms
// for deploywatch.test/api:slow.
var (
	latencyBounds = []float64{0.05, 0.1, 0.25, 0.5, 1}
	fastShares    = []float64{0.99, 0.01, 0, 0, 0}
	slowShares    = []float64{0, 0, 0.9, 0.1, 0}
)

func newPodTraffic(t *testing.T, c *cluster, rps float64, shares map[string]float64) *podTraffic {
	// A client of its own, not throttled: it reads pods at every scrape,
	// and the test's client must not wait behind it.
	rc := rest.CopyConfig(c.rc)
	rc.QPS, rc.Burst = 1000, 1000
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	p := &podTraffic{cs: cs, rps: rps, shares: shares, pods: map[string]*podCounts{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pods/{ns}/{name}", p.metrics)
	mux.HandleFunc("GET /discover/{ns}", p.discover)
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.outage = 0.05
		p.mu.Unlock()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// metrics counts the requests the pod served since the last scrape, while
// it was ready, and writes its counters.
func (p *podTraffic) metrics(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	pod, err := p.cs.CoreV1().Pods(ns).Get(r.Context(), name, metav1.GetOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	now := time.Now()
	p.mu.Lock()
	c := p.pods[ns+"/"+name]
	if c == nil {
		c = &podCounts{last: now, buckets: make([]float64, len(latencyBounds))}
		p.pods[ns+"/"+name] = c
	}
	if podServes(pod) {
		share := max(p.shares[pod.Spec.Containers[0].Image], p.outage)
		n := p.rps * now.Sub(c.last).Seconds()
		c.total += n
		c.bad += share * n
		shares := fastShares
		if pod.Spec.Containers[0].Image == "deploywatch.test/api:slow" {
			shares = slowShares
		}
		cum := 0.0
		for i := range c.buckets {
			cum += shares[i]
			c.buckets[i] += cum * n
		}
	}
	c.last = now
	var b strings.Builder
	fmt.Fprintf(&b, "# TYPE http_requests_total counter\nhttp_requests_total{status=\"200\"} %g\nhttp_requests_total{status=\"500\"} %g\n", c.total-c.bad, c.bad)
	b.WriteString("# TYPE http_request_duration_seconds histogram\n")
	for i, le := range latencyBounds {
		fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"%g\"} %g\n", le, c.buckets[i])
	}
	fmt.Fprintf(&b, "http_request_duration_seconds_bucket{le=\"+Inf\"} %g\nhttp_request_duration_seconds_count %g\n", c.total, c.total)
	p.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = io.WriteString(w, b.String())
}

func podServes(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// discover answers Prometheus's HTTP service discovery with the
// namespace's pods as read from the API server now: one target per pod,
// labelled with its namespace and name, scraped here.
func (p *podTraffic) discover(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	pods, err := p.cs.CoreV1().Pods(ns).List(r.Context(), metav1.ListOptions{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := []group{}
	for _, pod := range pods.Items {
		groups = append(groups, group{Targets: []string{p.addr}, Labels: map[string]string{
			"__metrics_path__": "/pods/" + ns + "/" + pod.Name, "namespace": ns, "pod": pod.Name,
		}})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(groups)
}

// podsPrometheus starts a Prometheus that discovers the namespace's pods
// (through traffic's HTTP service discovery, which reads them from the API
// server: Debian's Prometheus is built without the Kubernetes discovery)
// and scrapes each every second.
func podsPrometheus(t *testing.T, ns string, traffic *podTraffic, pods int) *testenv.Prometheus {
	t.Helper()
	return testenv.StartPrometheusWith(t, time.Second, pods, fmt.Sprintf(`  - job_name: pods
    http_sd_configs:
      - url: http://%s/discover/%s
        refresh_interval: 1s
`, traffic.addr, ns))
}

// TestKubernetesSideBySide: a slow rolling update (one pod at a time, each
// available only after 8s) in which the new pods serve 5% errors and the
// old ones none, or the new pods are ten times slower, fails during the
// rollout, on the side-by-side comparison, and is rolled back. A dependency outage that begins with the deploy and
// hits old and new pods alike (and a sibling workload, the control group)
// is not blamed on the release: not failed during the rollout, ended
// inconclusive, nothing rolled back.
func TestKubernetesSideBySide(t *testing.T) {
	c := kubeCluster(t)
	if _, ok := testenv.PrometheusBinary(); !ok {
		testenv.Missing(t, "prometheus", "Debian package prometheus")
	}
	cases := []struct {
		name      string
		image     string
		outage    bool
		wantCheck string
		wantCode  int
	}{
		{name: "errors on the new pods alone fail the rollout", image: "deploywatch.test/api:errors", wantCheck: "error_rate", wantCode: cli.ExitFailed},
		{name: "slow new pods fail the rollout", image: "deploywatch.test/api:slow", wantCheck: "latency_p99", wantCode: cli.ExitFailed},
		{name: "an outage on both sides is not the release's", image: "deploywatch.test/api:v2", outage: true, wantCheck: "error_rate", wantCode: cli.ExitInconclusive},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := c.namespace(t)
			traffic := newPodTraffic(t, c, 20, map[string]float64{"deploywatch.test/api:errors": 0.05})
			slow := func(d *appsv1.Deployment) {
				replicas, one, zero := int32(3), intstr.FromInt32(1), intstr.FromInt32(0)
				d.Spec.Replicas = &replicas
				d.Spec.MinReadySeconds = 8
				d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
					RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: &one, MaxUnavailable: &zero}}
			}
			c.deployment(t, ns, "api", "deploywatch.test/api:v1", slow)
			c.deployment(t, ns, "sibling", "deploywatch.test/api:v1", nil)
			prom := podsPrometheus(t, ns, traffic, 5)
			prom.WaitForHistory(t, 20*time.Second)

			deploy := fmt.Sprintf("%s --kubeconfig %s -n %s set image deployment/api api=%s", c.kubectl, c.kubeconfig, ns, tc.image)
			if tc.outage {
				// The outage begins with the deploy, on every pod.
				deploy += fmt.Sprintf(" && curl -sf -X POST http://%s/outage", traffic.addr)
			}
			cfg := filepath.Join(t.TempDir(), "deploywatch.yaml")
			text := fmt.Sprintf(`service: api
target:
  kubernetes:
    namespace: %[1]s
    deployment: api
metrics:
  prometheus: {url: %[2]s}
baseline:
  window: 20s
  control: 'namespace="%[1]s",pod=~"sibling-.*"'
phases:
  rollout: 3m
  warmup: 2s
  monitor: 25s
  interval: 1s
`, ns, prom.URL)
			if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, r := c.deploywatch(t, "run", "-f", cfg, "--version", "v2", "--", "sh", "-c", deploy)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s", code, tc.wantCode, out)
			}
			if !strings.Contains(out, "the old and the new pods serve side by side: comparing error_rate, latency_p99") {
				t.Errorf("the output does not say the pods were compared side by side:\n%s", out)
			}
			var ec *watch.CheckResult
			for _, cr := range r.Checks {
				if cr.Name == tc.wantCheck {
					ec = cr
				}
			}
			if ec == nil {
				t.Fatalf("no %s in the report\n%s", tc.wantCheck, out)
			}
			rollout := r.Phases[0]
			for _, p := range r.Phases {
				if p.Name == watch.PhaseRollout {
					rollout = p
				}
			}
			if !tc.outage {
				if rollout.Name != watch.PhaseRollout || rollout.Outcome != watch.OutcomeFailed {
					t.Fatalf("the rollout phase %+v: want it failed\n%s", rollout, out)
				}
				if ec.Verdict != judge.Fail || ec.Comparison != watch.ComparisonSideBySide || ec.Control == nil || ec.Value == nil || *ec.Value <= 2**ec.Control ||
					!strings.Contains(ec.Reason, "compared side by side") || !strings.Contains(ec.Query, "pod=~") || !strings.HasPrefix(r.Reason, tc.wantCheck+": ") {
					t.Errorf("%s %+v: want a side-by-side failure against the healthy old pods (reason %q)", tc.wantCheck, ec, r.Reason)
				}
				t.Logf("failed %s after the deploy, during the rollout: %s", r.DetectedAt.Sub(r.Deploy.StartedAt).Round(100*time.Millisecond), r.Reason)
				waitFor(t, "the rollback to v1", time.Minute, func() bool { return c.image(t, ns, "api") == "deploywatch.test/api:v1" })
				return
			}
			if rollout.Outcome != watch.OutcomePassed {
				t.Errorf("the rollout phase %+v: an outage on both sides must not fail it\n%s", rollout, out)
			}
			if !strings.Contains(r.Reason, "shared cause") || ec.Comparison != watch.ComparisonControl {
				t.Errorf("reason %q, comparison %q: want the control group to name a shared cause", r.Reason, ec.Comparison)
			}
			if r.Rollback != nil && r.Rollback.Performed {
				t.Errorf("rolled back: %+v", r.Rollback)
			}
			if img := c.image(t, ns, "api"); img != tc.image {
				t.Errorf("api runs %s, want %s: nothing rolled back", img, tc.image)
			}
			traffic.mu.Lock()
			defer traffic.mu.Unlock()
			if traffic.outage == 0 {
				t.Error("the outage never began")
			}
		})
	}
}
