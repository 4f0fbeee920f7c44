package github

import (
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestActionAndWorkflowParse checks the composite action declares the
// outputs this package writes, and the example workflow uses it.
func TestActionAndWorkflowParse(t *testing.T) {
	var action struct {
		Name    string
		Outputs map[string]struct{ Value string }
		Runs    struct {
			Using string
			Steps []map[string]any
		}
	}
	data, err := os.ReadFile("../../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &action); err != nil {
		t.Fatal(err)
	}
	if action.Runs.Using != "composite" || len(action.Runs.Steps) == 0 {
		t.Fatalf("action %+v", action)
	}
	for _, name := range []string{"verdict", "rolled_back", "detected_at", "error_rate_exceeded", "unhealthy_pods"} {
		o, ok := action.Outputs[name]
		if !ok || !strings.Contains(o.Value, "steps.watch.outputs."+name) {
			t.Errorf("output %s: %+v", name, o)
		}
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string
				With map[string]string
			}
		}
	}
	data, err = os.ReadFile("../../../examples/github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range wf.Jobs["deploy"].Steps {
		if strings.HasPrefix(s.Uses, "deploywatch/deploywatch") && s.With["command"] == "run" {
			found = true
		}
	}
	if !found {
		t.Error("the example workflow does not run deploywatch")
	}
}
