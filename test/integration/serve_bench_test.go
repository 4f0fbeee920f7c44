package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
)

// countingProxy forwards plain HTTP to target (through transport) and
// counts the requests.
func countingProxy(t testing.TB, target string, transport http.RoundTripper) (string, *atomic.Int64) {
	t.Helper()
	up, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	if transport != nil {
		rp.Transport = transport
	}
	rp.FlushInterval = -1 // watch streams pass through as they come
	var n atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), &n
}

// rss is a process's resident memory (VmRSS) and its peak (VmHWM), MiB.
func rss(pid int) (now, peak float64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			now = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return now, peak
}

// BenchmarkServeScale runs serve over 1,000 opted-in Deployments on the
// kwok cluster, with a real Prometheus, and deploys 50 of them at once:
// serve's resident memory, its API server requests and Prometheus queries
// per second when idle and while the 50 watches run, and the delay from
// each template change to its watch's start; and, while the 50 watches
// run, serve's API under 1,000 requests a second: its latency, and the
// longest gap between two looks of any watch (the watches' interval is
// 2 s: a gap past 4 s would be a tick delayed by more than one interval).
//
//	go test ./test/integration -run '^$' -bench ServeScale -benchtime 1x -timeout 30m
func BenchmarkServeScale(b *testing.B) {
	c := kubeCluster(b)
	bin := buildBinary(b)
	const workloads, deploys = 1000, 50
	ns := c.namespace(b)
	e := newEnv(b, healthy, 20, 30*time.Second)
	fast := rest.CopyConfig(c.rc)
	fast.QPS, fast.Burst = 500, 1000
	cs, err := kubernetes.NewForConfig(fast)
	if err != nil {
		b.Fatal(err)
	}
	// Create the Deployments, 20 at a time.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 20)
	one := int32(1)
	for i := range workloads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("svc-%04d", i)
			d := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name, watchLabel: "true"}},
				Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "deploywatch.test/api:v1"}}}}},
			}
			if _, err := cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	waitFor(b, "the workloads to roll out", 10*time.Minute, func() bool {
		list, err := cs.AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		ready := 0
		for _, d := range list.Items {
			if d.Status.AvailableReplicas == 1 && d.Status.ObservedGeneration == d.Generation {
				ready++
			}
		}
		return ready == workloads
	})
	tr, err := rest.TransportFor(fast)
	if err != nil {
		b.Fatal(err)
	}
	apiURL, apiRequests := countingProxy(b, c.rc.Host, tr)
	promURL, promQueries := countingProxy(b, e.prom.URL, nil)
	dir := b.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: %q}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n", apiURL)), 0o600); err != nil {
		b.Fatal(err)
	}
	dbPath := filepath.Join(dir, "deploywatch.db")
	srv := startServe(b, bin, dir, fmt.Sprintf(`kubernetes:
  namespaces: [%s]
  kubeconfig: %s
store:
  sqlite: %s
api:
  open_read: true
defaults:
  metrics:
    prometheus: {url: %s}
    selector: 'job="api"'
  baseline: {window: 1m}
  phases: {warmup: 2s, monitor: 60s, interval: 2s}
  on_failure: notify
`, ns, kubeconfig, dbPath, promURL))
	waitFor(b, "serve to adopt the workloads", 5*time.Minute, srv.ready)
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	// Idle: 1,000 workloads watched, no deploy.
	time.Sleep(5 * time.Second) // a measurement window, not a synchronisation
	a0, p0 := apiRequests.Load(), promQueries.Load()
	time.Sleep(10 * time.Second)
	idleAPI, idleProm := float64(apiRequests.Load()-a0)/10, float64(promQueries.Load()-p0)/10
	idleRSS, _ := rss(srv.cmd.Process.Pid)

	// One deploy alone: the delay from the change to its watch's start.
	lone := "svc-0001"
	loneAt := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), lone, "application/strategic-merge-patch+json",
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"deploywatch.test/api:v3"}]}}}}`), metav1.PatchOptions{}); err != nil {
		b.Fatal(err)
	}
	var loneStart time.Duration
	waitFor(b, "the lone deploy's watch", time.Minute, func() bool {
		page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns})
		if err != nil || len(page.Deploys) == 0 {
			return false
		}
		events, err := st.Events(context.Background(), page.Deploys[0].ID, 0)
		if err != nil || len(events) == 0 {
			return false
		}
		loneStart = events[0].Time.Sub(loneAt)
		return true
	})

	b.ResetTimer()
	changed := make([]time.Time, deploys)
	for i := range deploys {
		wg.Go(func() {
			name := fmt.Sprintf("svc-%04d", i*(workloads/deploys))
			patch := `{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"deploywatch.test/api:v2"}]}}}}`
			changed[i] = time.Now()
			if _, err := cs.AppsV1().Deployments(ns).Patch(context.Background(), name, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	var started []store.Deploy
	waitFor(b, "50 watches", 2*time.Minute, func() bool {
		page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns, Limit: 500})
		if err != nil {
			return false
		}
		started = started[:0]
		for _, d := range page.Deploys {
			if d.Version == "deploywatch.test/api:v2" {
				started = append(started, d)
			}
		}
		return len(started) == deploys
	})
	// The delay is to the watch's start: its first event (the start
	// phase beginning), once the platform's informers have synced.
	var delays, recorded []float64
	for _, d := range started {
		var i int
		fmt.Sscanf(d.Workload, "svc-%04d", &i)
		at := changed[i/(workloads/deploys)]
		recorded = append(recorded, float64(d.StartedAt.Sub(at).Microseconds())/1000)
		var events []store.Event
		waitFor(b, "the watch's first event", time.Minute, func() bool {
			events, err = st.Events(context.Background(), d.ID, 0)
			return err == nil && len(events) > 0
		})
		delays = append(delays, float64(events[0].Time.Sub(at).Microseconds())/1000)
	}
	slices.Sort(delays)
	slices.Sort(recorded)
	// Busy: the 50 watches in their monitor phase, and serve's API asked
	// 1,000 times a second.
	time.Sleep(10 * time.Second)
	a1, p1 := apiRequests.Load(), promQueries.Load()
	loadFrom := time.Now()
	api := loadAPI(srv.url+"/api/v1/deploys?limit=50", 1000, 20*time.Second)
	busyAPI, busyProm := float64(apiRequests.Load()-a1)/20, float64(promQueries.Load()-p1)/20
	busyRSS, peak := rss(srv.cmd.Process.Pid)
	b.StopTimer()
	// The longest gap between two looks of a watch while the API was under
	// load.
	var maxGap time.Duration
	for _, d := range started {
		events, err := st.Events(context.Background(), d.ID, 0)
		if err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for _, ev := range events {
			if ev.Kind != "measured" {
				continue
			}
			if !last.IsZero() && ev.Time.After(loadFrom) {
				maxGap = max(maxGap, ev.Time.Sub(last))
			}
			last = ev.Time
		}
	}

	b.ReportMetric(idleRSS, "idle_rss_MiB")
	b.ReportMetric(busyRSS, "busy_rss_MiB")
	b.ReportMetric(peak, "peak_rss_MiB")
	b.ReportMetric(idleAPI, "idle_api_req/s")
	b.ReportMetric(busyAPI, "busy_api_req/s")
	b.ReportMetric(idleProm, "idle_prom_queries/s")
	b.ReportMetric(busyProm, "busy_prom_queries/s")
	b.ReportMetric(float64(loneStart.Microseconds())/1000, "lone_start_delay_ms")
	b.ReportMetric(recorded[len(recorded)/2], "seen_delay_p50_ms")
	b.ReportMetric(recorded[len(recorded)-1], "seen_delay_max_ms")
	b.ReportMetric(delays[len(delays)/2], "start_delay_p50_ms")
	b.ReportMetric(delays[len(delays)*99/100], "start_delay_p99_ms")
	b.ReportMetric(delays[len(delays)-1], "start_delay_max_ms")
	b.ReportMetric(api.rps, "api_load_req/s")
	b.ReportMetric(float64(api.p50.Microseconds())/1000, "api_load_p50_ms")
	b.ReportMetric(float64(api.p99.Microseconds())/1000, "api_load_p99_ms")
	b.ReportMetric(float64(api.errors), "api_load_errors")
	b.ReportMetric(float64(maxGap.Milliseconds()), "look_gap_max_ms")
}

type apiLoad struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
}

// loadAPI asks url rate times a second for d (open loop: each request on
// time whatever the earlier ones take), latency counted from when each
// was due.
func loadAPI(url string, rate float64, d time.Duration) apiLoad {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	n := int(rate * d.Seconds())
	lats := make([]time.Duration, n)
	var errs atomic.Int64
	due := make(chan int, 256)
	var wg sync.WaitGroup
	begin := time.Now()
	for range 128 {
		wg.Go(func() {
			for i := range due {
				at := begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				time.Sleep(time.Until(at)) // pacing the load, not synchronising
				resp, err := client.Get(url)
				if err != nil || resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
				lats[i] = time.Since(at)
			}
		})
	}
	for i := range n {
		due <- i
	}
	close(due)
	wg.Wait()
	took := time.Since(begin)
	slices.Sort(lats)
	return apiLoad{rps: float64(n) / took.Seconds(), p50: lats[n/2], p99: lats[n*99/100], errors: int(errs.Load())}
}
