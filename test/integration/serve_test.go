package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/deploywatch/deploywatch/internal/store"
	"github.com/deploywatch/deploywatch/internal/store/sqlite"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

// serveProc is a deploywatch serve process.
type serveProc struct {
	*process
	url string
}

// startServe runs the binary's serve with serveYAML (its listen address is
// set here) and waits for it to answer.
func startServe(t testing.TB, bin, dir, serveYAML string, env ...string) *serveProc {
	t.Helper()
	addr := testenv.FreeAddr(t)
	cfg := filepath.Join(dir, fmt.Sprintf("serve-%s.yaml", strings.ReplaceAll(addr, ":", "-")))
	if err := os.WriteFile(cfg, []byte("listen: "+addr+"\n"+serveYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: exec.Command(bin, "serve", "-f", cfg, "--log-level", "info"), out: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("serve %s log:\n%s", addr, p.out)
		}
	})
	s := &serveProc{process: p, url: "http://" + addr}
	waitFor(t, "serve to answer", 60*time.Second, func() bool {
		resp, err := http.Get(s.url + "/health/live")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == 200
	})
	return s
}

// metric reads one sample of serve's /metrics (0 when absent).
func (s *serveProc) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	resp, err := http.Get(s.url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	fam := families[name]
	if fam == nil {
		return 0
	}
	for _, m := range fam.Metric {
		if matches(m.Label, labels) {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return 0
}

func matches(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range got {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// leader reports whether the replica says it leads (/health/info).
func (s *serveProc) leader() bool {
	resp, err := http.Get(s.url + "/health/info")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var info struct {
		Leader bool `json:"leader"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Leader
}

func (s *serveProc) ready() bool {
	resp, err := http.Get(s.url + "/health/ready")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// helm is the helm binary scripts/test.sh builds.
func helm(t *testing.T) string {
	t.Helper()
	h := os.Getenv("DEPLOYWATCH_HELM")
	if h == "" {
		testenv.Missing(t, "helm", "scripts/test.sh builds it from helm.sh/helm/v3 into the cache; DEPLOYWATCH_HELM names it")
	}
	return h
}

// renderChart renders deploy/helm/deploywatch with --set values.
func renderChart(t *testing.T, release, namespace string, set ...string) []byte {
	t.Helper()
	args := []string{"template", release, "../../deploy/helm/deploywatch", "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return out
}

// documents splits rendered YAML into its objects.
func documents(t *testing.T, rendered []byte) []map[string]any {
	t.Helper()
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(rendered))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

func kinds(docs []map[string]any) map[string]int {
	out := map[string]int{}
	for _, d := range docs {
		out[fmt.Sprint(d["kind"])]++
	}
	return out
}

func (c *cluster) kubectlApply(t *testing.T, ns string, manifest []byte, extra ...string) string {
	t.Helper()
	args := append([]string{"--kubeconfig", c.kubeconfig, "-n", ns, "apply", "-f", "-"}, extra...)
	cmd := exec.Command(c.kubectl, args...)
	cmd.Stdin = bytes.NewReader(manifest)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply %v: %v\n%s", extra, err, out)
	}
	return string(out)
}

// TestChart renders the Helm chart with the real helm and has the real API
// server take every object (server-side dry run, strict fields), for the
// SQLite and the PostgreSQL installs; the plain manifests are the chart's
// rendering.
func TestChart(t *testing.T) {
	c := kubeCluster(t)
	lint, err := exec.Command(helm(t), "lint", "--strict", "../../deploy/helm/deploywatch").CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint: %v\n%s", err, lint)
	}
	ns := c.namespace(t)
	cases := []struct {
		name  string
		set   []string
		kinds map[string]int
	}{
		{"sqlite, one namespace", []string{"watch.namespaces={" + ns + "}"},
			map[string]int{"Deployment": 1, "PersistentVolumeClaim": 1, "Role": 1, "RoleBinding": 1, "ServiceAccount": 1, "Service": 1, "ConfigMap": 1}},
		{"postgres, two replicas, leader election", []string{"watch.namespaces={" + ns + "}", "store.postgres.existingSecret=deploywatch-db"},
			map[string]int{"Deployment": 1, "Role": 2, "RoleBinding": 2, "PodDisruptionBudget": 1, "ServiceAccount": 1, "Service": 1, "ConfigMap": 1}},
		{"all namespaces", []string{"watch.allNamespaces=true"},
			map[string]int{"Deployment": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "PersistentVolumeClaim": 1, "ServiceAccount": 1, "Service": 1, "ConfigMap": 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rendered := renderChart(t, "deploywatch", ns, tc.set...)
			docs := documents(t, rendered)
			if got := kinds(docs); fmt.Sprint(got) != fmt.Sprint(tc.kinds) {
				t.Fatalf("objects %v, want %v", got, tc.kinds)
			}
			out := c.kubectlApply(t, ns, rendered, "--dry-run=server", "--validate=strict")
			if !strings.Contains(out, "(server dry run)") {
				t.Fatalf("not a server dry run:\n%s", out)
			}
			for _, d := range docs {
				if d["kind"] != "Deployment" {
					continue
				}
				var dep appsv1.Deployment
				b, _ := json.Marshal(d)
				if err := json.Unmarshal(b, &dep); err != nil {
					t.Fatal(err)
				}
				pod, ctr := dep.Spec.Template.Spec, dep.Spec.Template.Spec.Containers[0]
				if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
					ctr.SecurityContext == nil || !*ctr.SecurityContext.ReadOnlyRootFilesystem || *ctr.SecurityContext.AllowPrivilegeEscalation {
					t.Errorf("the pod is not non-root with a read-only root: %+v %+v", pod.SecurityContext, ctr.SecurityContext)
				}
				replicas := *dep.Spec.Replicas
				if strings.Contains(tc.name, "postgres") != (replicas == 2) {
					t.Errorf("%d replicas", replicas)
				}
			}
		})
	}
	t.Run("more than one replica on SQLite is refused", func(t *testing.T) {
		out, err := exec.Command(helm(t), "template", "dw", "../../deploy/helm/deploywatch", "--set", "replicas=2").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "SQLite is one replica's file") {
			t.Fatalf("helm template with replicas=2 on SQLite: %v\n%s", err, out)
		}
	})
	t.Run("the plain manifests are the chart's rendering", func(t *testing.T) {
		want, err := os.ReadFile("../../deploy/manifests/deploywatch.yaml")
		if err != nil {
			t.Fatal(err)
		}
		_, want, _ = bytes.Cut(want, []byte("\n")) // the "do not edit" line
		got := renderChart(t, "deploywatch", "deploywatch")
		if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
			t.Fatal("deploy/manifests/deploywatch.yaml is not the chart's rendering: run scripts/render-manifests.sh")
		}
	})
}

// serviceAccountKubeconfig applies the chart's ServiceAccount and RBAC for
// a release in ns watching ns (rules edited by edit, if set), and writes a
// kubeconfig that authenticates as that ServiceAccount with a token.
func (c *cluster) serviceAccountKubeconfig(t *testing.T, ns string, edit func(doc map[string]any)) string {
	t.Helper()
	var rbac bytes.Buffer
	for _, d := range documents(t, renderChart(t, "deploywatch", ns, "watch.namespaces={"+ns+"}")) {
		switch d["kind"] {
		case "ServiceAccount", "Role", "RoleBinding":
			if edit != nil {
				edit(d)
			}
			b, _ := yaml.Marshal(d)
			rbac.WriteString("---\n")
			rbac.Write(b)
		}
	}
	c.kubectlApply(t, ns, rbac.Bytes())
	token, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "create", "token", "deploywatch", "--duration", "1h").Output()
	if err != nil {
		t.Fatalf("kubectl create token: %v", err)
	}
	admin, err := clientcmd.LoadFromFile(c.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = cluster
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: strings.TrimSpace(string(token))}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa", Namespace: ns}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestServeOnTheCluster runs serve as the chart's ServiceAccount (its
// token, its RBAC) with a real Prometheus scraping a test service, and
// checks what a platform team relies on.
func TestServeOnTheCluster(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)
	t.Parallel()
	ns := c.namespace(t)
	kubeconfig := c.serviceAccountKubeconfig(t, ns, nil)
	e := newEnv(t, healthy, 20, 5*time.Second)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "deploywatch.db")
	optIn := func(d *appsv1.Deployment) { d.Labels[watchLabel] = "true" }
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", optIn)
	c.deployment(t, ns, "plain", "deploywatch.test/api:v1", nil)
	c.deployment(t, ns, "gitops", "deploywatch.test/api:v1", func(d *appsv1.Deployment) {
		optIn(d)
		d.Labels["argocd.argoproj.io/instance"] = "shop"
	})
	// A broken ConfigMap: its workload is reported, the others go on.
	c.kubectlApply(t, ns, []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: broken-deploywatch}
data:
  deploywatch.yaml: |
    phases:
      monitor: soon
`))
	c.deployment(t, ns, "broken", "deploywatch.test/api:v1", func(d *appsv1.Deployment) {
		optIn(d)
		d.Annotations = map[string]string{"deploywatch.dev/config": "broken-deploywatch"}
	})
	srv := startServe(t, bin, dir, fmt.Sprintf(`kubernetes:
  namespaces: [%s]
  kubeconfig: %s
store:
  sqlite: %s
defaults:
  metrics:
    prometheus: {url: %s}
    selector: 'job="api"'
  baseline: {window: 1m}
  phases: {warmup: 2s, monitor: 8s, interval: 1s}
  on_failure: rollback
`, ns, kubeconfig, dbPath, e.prom.URL))
	waitFor(t, "serve to be ready", time.Minute, srv.ready)
	waitFor(t, "the broken config to be reported", time.Minute, func() bool {
		return srv.metric(t, "deploywatch_config_errors", nil) == 1
	})
	events, err := c.cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=broken,reason=DeploywatchConfigError"})
	if err != nil || len(events.Items) != 1 || events.Items[0].Type != "Warning" || !strings.Contains(events.Items[0].Message, `"soon" is not a duration`) {
		t.Fatalf("no config error Event on the broken workload: %+v, %v", events, err)
	}

	for _, name := range []string{"api", "plain", "gitops", "broken"} {
		c.setImageOf(t, ns, name, "deploywatch.test/api:crashloop")
	}
	failed := map[string]string{"namespace": ns, "workload": "api", "verdict": "failed"}
	waitFor(t, "api's crash loop to be rolled back", 2*time.Minute, func() bool { return srv.metric(t, "deploywatch_deploys_total", failed) == 1 })
	if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
		t.Fatalf("api runs %s after the rollback", img)
	}
	if n := srv.metric(t, "deploywatch_rollbacks_total", map[string]string{"workload": "api", "result": "ok"}); n != 1 {
		t.Errorf("deploywatch_rollbacks_total{result=ok} = %v", n)
	}
	waitFor(t, "gitops's verdict", 2*time.Minute, func() bool {
		return srv.metric(t, "deploywatch_deploys_total", map[string]string{"workload": "gitops", "verdict": "failed"}) == 1
	})
	if img := c.image(t, ns, "gitops"); img != "deploywatch.test/api:crashloop" {
		t.Errorf("the Argo CD-managed workload was undone: %s", img)
	}
	// A good image after the rollback: one more deploy, and the rollback in
	// between started none (the informer saw it before this change).
	c.setImageOf(t, ns, "api", "deploywatch.test/api:v2")
	waitFor(t, "the good image to end stable", 2*time.Minute, func() bool {
		return srv.metric(t, "deploywatch_deploys_total", map[string]string{"workload": "api", "verdict": "stable"}) == 1
	})
	st, err := sqlite.Open(context.Background(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	page, err := st.ListDeploys(context.Background(), store.Query{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	byWorkload := map[string][]string{}
	for _, d := range page.Deploys {
		byWorkload[d.Workload] = append(byWorkload[d.Workload], d.Verdict+" "+d.Version)
	}
	if got := strings.Join(byWorkload["api"], ", "); got != "stable deploywatch.test/api:v2, failed deploywatch.test/api:crashloop" {
		t.Errorf("api's history: %s; want the failed crash loop and the stable v2, and no deploy for the rollback", got)
	}
	if len(byWorkload["plain"]) != 0 || c.image(t, ns, "plain") != "deploywatch.test/api:crashloop" {
		t.Errorf("a workload without the label was watched (%v) or touched (%s)", byWorkload["plain"], c.image(t, ns, "plain"))
	}
	if len(byWorkload["broken"]) != 0 {
		t.Errorf("the broken workload was watched: %v", byWorkload["broken"])
	}
	full, err := st.Deploy(context.Background(), page.Deploys[len(page.Deploys)-1].ID)
	if err != nil || !bytes.Contains(full.Report, []byte(`"verdict": "`)) {
		t.Errorf("the stored report: %s, %v", full.Report, err)
	}
}

// TestServeRBACVerbRemoved: the chart's RBAC is exactly what serve needs:
// with one verb taken away, serve refuses to start and says which.
func TestServeRBACVerbRemoved(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)
	t.Parallel()
	ns := c.namespace(t)
	kubeconfig := c.serviceAccountKubeconfig(t, ns, func(doc map[string]any) {
		if doc["kind"] != "Role" {
			return
		}
		for _, r := range doc["rules"].([]any) {
			rule := r.(map[string]any)
			if fmt.Sprint(rule["resources"]) == "[deployments statefulsets daemonsets]" {
				rule["verbs"] = []any{"get", "list", "watch"} // no patch: no rollback
			}
		}
	})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\nkubernetes:\n  namespaces: [%s]\n  kubeconfig: %s\nstore:\n  sqlite: %s/db\n", ns, kubeconfig, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "serve", "-f", cfg).CombinedOutput()
	if code := exitCode(err); code != 2 {
		t.Fatalf("exit %d, want 2\n%s", code, out)
	}
	for _, want := range []string{"lacks permissions it needs", "patch deployments.apps in namespace " + ns + " (to roll a Deployment back", "patch statefulsets.apps"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the message lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "list deployments") {
		t.Errorf("names a permission it has:\n%s", out)
	}
}

const watchLabel = "deploywatch.dev/watch"

func (c *cluster) setImageOf(t *testing.T, ns, name, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"api","image":%q}]}}}}`, image)
	if _, err := c.cs.AppsV1().Deployments(ns).Patch(context.Background(), name, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatal(err)
	}
}
