package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/deploywatch/deploywatch/internal/cli"
)

// TestManifestsPassTheAPIServer has the real API server validate, with a
// server-side dry run and strict field validation, the example service's
// Deployment and a Deployment carrying the probes `deploywatch generate
// probes` writes.
func TestManifestsPassTheAPIServer(t *testing.T) {
	c := kubeCluster(t)
	t.Parallel()
	ns := c.namespace(t)
	dryRun := func(t *testing.T, manifest []byte) {
		t.Helper()
		cmd := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
		cmd.Stdin = bytes.NewReader(manifest)
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "(server dry run)") {
			t.Fatalf("the API server refuses it: %v\n%s\n%s", err, out, manifest)
		}
	}

	t.Run("the example service's Deployment", func(t *testing.T) {
		data, err := os.ReadFile("../../examples/service/deployment.yaml")
		if err != nil {
			t.Fatal(err)
		}
		dryRun(t, data)
	})

	t.Run("generated probes in a Deployment", func(t *testing.T) {
		cfg := kubeConfigFile(t, ns, "api", "", "verify:\n  base_url: http://api.shop.svc:8080\n")
		var out bytes.Buffer
		if code := cli.Run(context.Background(), []string{"generate", "probes", "-f", cfg}, &out, &out); code != 0 {
			t.Fatalf("exit %d\n%s", code, out.String())
		}
		var container map[string]any
		if err := yaml.Unmarshal(out.Bytes(), &container); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		container["name"], container["image"] = "api", "deploywatch.test/api:v1"
		dep := map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "probed"},
			"spec": map[string]any{
				"selector": map[string]any{"matchLabels": map[string]any{"app": "probed"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "probed"}},
					"spec":     map[string]any{"containers": []any{container}},
				},
			},
		}
		manifest, err := json.Marshal(dep)
		if err != nil {
			t.Fatal(err)
		}
		dryRun(t, manifest)
	})
}
