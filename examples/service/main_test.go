package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/testenv"
)

// probe mirrors the fields of a Kubernetes probe the seed sets.
type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port int    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
}

func TestManifestProbesMatchTheSeed(t *testing.T) {
	data, err := os.ReadFile("deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Spec       struct {
			Template struct {
				Spec struct {
					Containers []struct {
						Name  string `yaml:"name"`
						Ports []struct {
							ContainerPort int `yaml:"containerPort"`
						}
						LivenessProbe  probe `yaml:"livenessProbe"`
						ReadinessProbe probe `yaml:"readinessProbe"`
						StartupProbe   probe `yaml:"startupProbe"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.APIVersion != "apps/v1" || d.Kind != "Deployment" || len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("not one apps/v1 Deployment container: %+v", d)
	}
	c := d.Spec.Template.Spec.Containers[0]
	cases := []struct {
		name string
		got  probe
		path string
		init int
		per  int
		fail int
	}{
		{"liveness", c.LivenessProbe, "/health/live", 10, 10, 3},
		{"readiness", c.ReadinessProbe, "/health/ready", 5, 5, 3},
		{"startup", c.StartupProbe, "/health/live", 0, 10, 30},
	}
	for _, w := range cases {
		g := w.got
		if g.HTTPGet.Path != w.path || g.HTTPGet.Port != 8000 || g.InitialDelaySeconds != w.init || g.PeriodSeconds != w.per || g.FailureThreshold != w.fail {
			t.Errorf("%s probe %+v, want the seed's %s on 8000, delay %d, period %d, failures %d", w.name, g, w.path, w.init, w.per, w.fail)
		}
	}
}

func startService(t *testing.T, args ...string) (string, *exec.Cmd) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "service")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := testenv.FreeAddr(t)
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-drain", "2s"}, args...)...)
	cmd.Env = append(os.Environ(), "APP_VERSION=1.2.3", "GIT_COMMIT=abc123")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := testenv.WaitHTTP("http://"+addr+"/health/live", 20*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return "http://" + addr, cmd
}

func smoke(t *testing.T, base string) (int, string) {
	t.Helper()
	if _, err := exec.LookPath("jq"); err != nil {
		testenv.Missing(t, "jq", "Debian package jq")
	}
	cmd := exec.Command("bash", "../smoke-tests.sh", base)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func TestSeedSmokeTestsPass(t *testing.T) {
	base, _ := startService(t)
	code, out := smoke(t, base)
	if code != 0 || !strings.Contains(out, "All smoke tests passed") {
		t.Fatalf("smoke tests exit %d:\n%s", code, out)
	}
	resp, err := http.Get(base + "/health/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || info["version"] != "1.2.3" || info["commit"] != "abc123" {
		t.Fatalf("info %v %v", info, err)
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	for _, want := range []string{`http_requests_total{method="GET",route="/api/v1/status",status="200"} 1`, `http_request_duration_seconds_bucket{method="POST",route="/auth/health",le="0.5"}`} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestNotReadyWhenRedisIsDownAndWhileDraining(t *testing.T) {
	r := testenv.StartRedis(t, "")
	base, cmd := startService(t, "-redis", r.Addr)
	if code, out := smoke(t, base); code != 0 {
		t.Fatalf("with redis up: exit %d\n%s", code, out)
	}
	r.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := smoke(t, base)
		if code == 1 && strings.Contains(out, "FAILED: 1 smoke tests failed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with redis down the smoke tests still pass:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.Start()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	deadline = time.Now().Add(5 * time.Second)
	for {
		ready, body := get(t, base+"/health/ready")
		live, _ := get(t, base+"/health/live")
		if ready == 503 && strings.Contains(body, `"status":"draining"`) && live == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGTERM ready=%d %s live=%d, want 503 draining and 200 live", ready, body, live)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
