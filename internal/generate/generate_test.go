package generate

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/golden"
	"github.com/deploywatch/deploywatch/internal/testenv"
)

func load(t *testing.T, path string) *config.Config {
	t.Helper()
	c, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var configs = map[string]string{"issue": "../config/testdata/issue.good.yaml", "full": "testdata/full.yaml"}

func TestGolden(t *testing.T) {
	for name, path := range configs {
		c := load(t, path)
		rf, err := Alerts(c)
		if err != nil {
			t.Fatal(err)
		}
		alerts, err := rf.YAML()
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, name+".alerts.golden.yml", alerts)
		dash, err := Dashboard(c)
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, name+".dashboard.golden.json", dash)
		probes, err := Probes(c)
		if err != nil {
			t.Fatal(err)
		}
		golden.Check(t, name+".probes.golden.yml", probes)
		golden.Check(t, name+".workflow.golden.yml", Workflow(c, "deploywatch.yaml"))
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testenv.Missing(t, "promtool", "Debian package prometheus")
	}
	return p
}

// TestRulesPassPromtool checks the rule files with Debian's promtool 2.42.
func TestRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	for name, path := range configs {
		t.Run(name, func(t *testing.T) {
			rf, err := Alerts(load(t, path))
			if err != nil {
				t.Fatal(err)
			}
			data, _ := rf.YAML()
			file := filepath.Join(t.TempDir(), "alerts.yml")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "check", "rules", file).CombinedOutput(); err != nil {
				t.Fatalf("promtool check rules: %v\n%s\n%s", err, out, data)
			}
		})
	}
}

// TestErrorRateAlertFiresAboveTheLineOnly is a promtool unit test: 2%
// errors fire HighErrorRateAfterDeploy, 0.5% do not.
func TestErrorRateAlertFiresAboveTheLineOnly(t *testing.T) {
	bin := promtool(t)
	c := load(t, configs["issue"])
	rf, err := Alerts(c)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := rf.YAML()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	var desc string
	for _, r := range rf.Groups[0].Rules {
		if r.Alert == "HighErrorRateAfterDeploy" {
			desc = r.Annotations["description"]
		}
	}
	// 600 requests a minute: 12 errors (2%) in the first service, 3 (0.5%)
	// in the second. The ratio is exactly 12/600 over a 5m rate.
	expected := strings.Replace(desc, "{{ $value | humanizePercentage }}", "2%", 1)
	test := fmt.Sprintf(`rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="api",status="200"}'
        values: '0+588x30'
      - series: 'http_requests_total{job="api",status="500"}'
        values: '0+12x30'
    alert_rule_test:
      - eval_time: 4m
        alertname: HighErrorRateAfterDeploy
        exp_alerts: []
      - eval_time: 15m
        alertname: HighErrorRateAfterDeploy
        exp_alerts:
          - exp_labels: {severity: critical, service: api, environment: staging}
            exp_annotations:
              summary: High error rate on api
              description: %q
  - interval: 1m
    input_series:
      - series: 'http_requests_total{job="api",status="200"}'
        values: '0+597x30'
      - series: 'http_requests_total{job="api",status="500"}'
        values: '0+3x30'
    alert_rule_test:
      - eval_time: 20m
        alertname: HighErrorRateAfterDeploy
        exp_alerts: []
`, expected)
	if err := os.WriteFile(filepath.Join(dir, "test.yml"), []byte(test), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "test", "rules", "test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestDashboardIsWellFormed: unique panel ids, grid positions inside 24
// columns without overlap, the four rows, every target's PromQL parses,
// every datasource is the variable.
func TestDashboardIsWellFormed(t *testing.T) {
	for name, path := range configs {
		t.Run(name, func(t *testing.T) {
			data, err := Dashboard(load(t, path))
			if err != nil {
				t.Fatal(err)
			}
			var d struct {
				Panels []struct {
					ID         int
					Type       string
					Title      string
					GridPos    struct{ H, W, X, Y int }
					Datasource *struct{ Type, UID string }
					Targets    []struct {
						Expr       string
						Datasource struct{ UID string }
					}
				}
				Templating  struct{ List []struct{ Name, Type string } }
				Annotations struct{ List []map[string]any }
			}
			if err := json.Unmarshal(data, &d); err != nil {
				t.Fatal(err)
			}
			ids := map[int]bool{}
			cells := map[[2]int]string{}
			var rows []string
			for _, p := range d.Panels {
				if ids[p.ID] {
					t.Errorf("panel id %d twice", p.ID)
				}
				ids[p.ID] = true
				g := p.GridPos
				if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
					t.Errorf("panel %q grid %+v", p.Title, g)
				}
				for y := g.Y; y < g.Y+g.H; y++ {
					for x := g.X; x < g.X+g.W; x++ {
						if other, ok := cells[[2]int{x, y}]; ok {
							t.Fatalf("panels %q and %q overlap", p.Title, other)
						}
						cells[[2]int{x, y}] = p.Title
					}
				}
				if p.Type == "row" {
					rows = append(rows, p.Title)
				}
				if p.Datasource != nil && p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q datasource %+v", p.Title, p.Datasource)
				}
				for _, tg := range p.Targets {
					if tg.Datasource.UID != "${datasource}" {
						t.Errorf("panel %q target datasource %q", p.Title, tg.Datasource.UID)
					}
					if err := checkDashboardExpr(tg.Expr); err != nil {
						t.Error(err)
					}
				}
			}
			if strings.Join(rows, ",") != "Health,Traffic,Resources,Business" {
				t.Errorf("rows %v", rows)
			}
			vars := map[string]bool{}
			for _, v := range d.Templating.List {
				vars[v.Name] = true
			}
			if !vars["datasource"] || !vars["service"] || !vars["environment"] {
				t.Errorf("variables %+v", d.Templating.List)
			}
			if len(d.Annotations.List) != 2 {
				t.Errorf("annotations %+v", d.Annotations.List)
			}
		})
	}
}

// TestProbesAreKubernetesContainerYAML decodes the probes strictly into a
// Kubernetes container.
func TestProbesAreKubernetesContainerYAML(t *testing.T) {
	for name, path := range configs {
		t.Run(name, func(t *testing.T) {
			data, err := Probes(load(t, path))
			if err != nil {
				t.Fatal(err)
			}
			var generic map[string]any
			if err := yaml.Unmarshal(data, &generic); err != nil {
				t.Fatal(err)
			}
			generic["name"], generic["image"] = "api", "api:1"
			js, _ := json.Marshal(generic)
			dec := json.NewDecoder(strings.NewReader(string(js)))
			dec.DisallowUnknownFields()
			var c corev1.Container
			if err := dec.Decode(&c); err != nil {
				t.Fatalf("not container YAML: %v\n%s", err, data)
			}
			if c.LivenessProbe.HTTPGet.Path != "/health/live" || c.ReadinessProbe.PeriodSeconds != 5 || c.StartupProbe.FailureThreshold != 30 {
				t.Errorf("probes %+v", c)
			}
			if name == "full" && c.ReadinessProbe.HTTPGet.Port.IntValue() != 8080 {
				t.Errorf("port %v, want verify.base_url's 8080", c.ReadinessProbe.HTTPGet.Port)
			}
		})
	}
}

// TestStatefulSetAndDaemonSetOutputs: the rollout panel reads the kind's
// own kube-state-metrics series, and pods are selected by the workload's
// name, which StatefulSet and DaemonSet pod names start with.
func TestStatefulSetAndDaemonSetOutputs(t *testing.T) {
	for _, tc := range []struct{ field, name, rolloutSeries string }{
		{"statefulset", "db", `kube_statefulset_status_replicas_updated{namespace=\"shop\",statefulset=\"db\"}`},
		{"daemonset", "agent", `kube_daemonset_status_updated_number_scheduled{namespace=\"shop\",daemonset=\"agent\"}`},
	} {
		t.Run(tc.field, func(t *testing.T) {
			c, err := config.Load([]byte(fmt.Sprintf("service: %[2]s\ntarget:\n  kubernetes:\n    namespace: shop\n    %[1]s: %[2]s\nmetrics:\n  prometheus:\n    url: http://127.0.0.1:9090\n  selector: 'namespace=\"shop\"'\n", tc.field, tc.name)), "k.yaml")
			if err != nil {
				t.Fatal(err)
			}
			dash, err := Dashboard(c)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(dash), tc.rolloutSeries) || strings.Contains(string(dash), "kube_deployment_") {
				t.Errorf("dashboard does not read %s's rollout series", tc.field)
			}
			rf, err := Alerts(c)
			if err != nil {
				t.Fatal(err)
			}
			rules, err := rf.YAML()
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf(`pod=~"%s-.*"`, tc.name); strings.Count(string(rules), want) < 3 {
				t.Errorf("restart, CPU and memory alerts do not all select %s:\n%s", want, rules)
			}
		})
	}
}

// TestServeGenerators pins the alerts and dashboard for deploywatch
// itself, checks the rules with promtool, and has promtool prove that a
// failed rollback fires its alert and an ok one does not.
func TestServeGenerators(t *testing.T) {
	rf, err := ServeAlerts(`job="deploywatch"`)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := rf.YAML()
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "serve.alerts.golden.yml", rules)
	dash, err := ServeDashboard(`job="deploywatch"`)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "serve.dashboard.golden.json", dash)
	if _, err := ServeAlerts(`job=`); err == nil {
		t.Error("a broken selector was accepted")
	}
	bin := promtool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), rules, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", filepath.Join(dir, "alerts.yml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	test := `rule_files: [alerts.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'deploywatch_rollbacks_total{job="deploywatch",namespace="shop",workload="api",result="failed"}'
        values: '0 0 1 1 1'
      - series: 'deploywatch_rollbacks_total{job="deploywatch",namespace="shop",workload="web",result="ok"}'
        values: '0 1 2 3 4'
      - series: 'deploywatch_leader{job="deploywatch",instance="a"}'
        values: '1 1 0 0 0 0 0'
      - series: 'up{job="deploywatch",instance="a"}'
        values: '1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 3m
        alertname: DeploywatchRollbackFailed
        exp_alerts:
          - exp_labels: {severity: critical, service: deploywatch, job: deploywatch, namespace: shop, workload: api, result: failed}
            exp_annotations:
              summary: A rollback of shop/api failed
              description: "deploywatch decided to roll back and could not: the bad release may still serve. See the deploy's report."
      - eval_time: 3m
        alertname: DeploywatchNoLeader
      - eval_time: 5m
        alertname: DeploywatchNoLeader
        exp_alerts:
          - exp_labels: {severity: critical, service: deploywatch}
            exp_annotations:
              summary: No deploywatch replica leads
              description: "The replicas are up but none holds the Lease: no deploy is watched."
      - eval_time: 5m
        alertname: DeploywatchDown
`
	if err := os.WriteFile(filepath.Join(dir, "test.yml"), []byte(test), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "test", "rules", "test.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}
