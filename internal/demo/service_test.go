package demo

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// TestSeedSmokeScriptPassesAgainstTheDemoService runs the seed's
// smoke-tests.sh, unchanged, against the demo's service.
func TestSeedSmokeScriptPassesAgainstTheDemoService(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, tool, "Debian package "+tool)
		}
	}
	svc, err := Start("127.0.0.1:0", Stable, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	out, err := exec.Command("bash", "../../examples/smoke-tests.sh", "http://"+svc.Addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "All smoke tests passed") {
		t.Fatalf("smoke tests: %v\n%s", err, out)
	}
}

func TestPlatformSwitchesReleasesAndRollsBackToThePinnedVersion(t *testing.T) {
	svc, err := Start("127.0.0.1:0", Stable, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	p := NewPlatform(svc, Stable, Good, Bad)
	ctx := context.Background()
	d := watch.Deploy{Version: Bad.Version, PreviousVersion: Stable.Version}
	if err := p.Deploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	if v := info(t, svc)["version"]; v != Bad.Version {
		t.Fatalf("/health/info version %v after the deploy", v)
	}
	if _, err := p.Rollback(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got := svc.Running().Version; got != Stable.Version {
		t.Fatalf("running %s after the rollback, want %s", got, Stable.Version)
	}
	if err := p.Deploy(ctx, watch.Deploy{Version: "v9"}); err == nil {
		t.Error("an unknown release was deployed")
	}
}

func info(t *testing.T, svc *Service) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + svc.Addr + "/health/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}
