package integration

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploywatch/deploywatch/internal/watch"
)

// revisionNumbers lists the revision numbers of the Deployment's
// ReplicaSets and the Deployment's own.
func (c *cluster) revisionNumbers(t *testing.T, ns, name string) (deployment string, replicaSets []string) {
	t.Helper()
	list, err := c.cs.AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil {
		t.Fatal(err)
	}
	for _, rs := range list.Items {
		replicaSets = append(replicaSets, rs.Annotations["deployment.kubernetes.io/revision"]+"="+rs.Spec.Template.Spec.Containers[0].Image)
	}
	return c.get(t, ns, name).Annotations["deployment.kubernetes.io/revision"], replicaSets
}

// TestKubernetesResume kills the real binary (SIGKILL) during a watch of a
// crash-looping image and resumes it from another process: the Deployment
// is rolled back to the pinned ReplicaSet once, and a resume after the
// undo was made does not undo again (the revision numbers do not move).
func TestKubernetesResume(t *testing.T) {
	c := kubeCluster(t)
	bin := buildBinary(t)

	run := func(t *testing.T, ns string) (*process, string, string) {
		cfg := kubeConfigFile(t, ns, "api", "", "")
		dir := filepath.Dir(cfg)
		state, report := filepath.Join(dir, "watch.state"), filepath.Join(dir, "report.json")
		p := startProcess(t, bin, "run", "-f", cfg, "--version", "v2", "--state", state, "--report", report,
			"--kubeconfig", c.kubeconfig, "-o", "json", "--",
			c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "set", "image", "deployment/api", "api=deploywatch.test/api:crashloop")
		return p, state, report
	}

	t.Run("killed during the rollout, resumed by another process: rolled back once", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		before := c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
		p, state, report := run(t, ns)
		p.waitEvent(t, time.Minute, `"event":"phase_started"`, `"phase":"rollout"`)
		// The deploy command has run once the new ReplicaSet exists.
		waitFor(t, "revision 2", 30*time.Second, func() bool {
			rev, _ := c.revisionNumbers(t, ns, "api")
			return rev == "2"
		})
		p.kill(t)
		if saved := readReport(t, report); saved.Verdict != watch.InProgress || saved.Rollback != nil {
			t.Fatalf("the killed process's report: verdict %s, rollback %+v", saved.Verdict, saved.Rollback)
		}
		r := startProcess(t, bin, "watch", "--resume", state, "-o", "json")
		if code := r.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("resume: exit %d, want 1\n%s", code, r.out)
		}
		rep := readReport(t, report)
		if !strings.Contains(rep.Reason, "CrashLoopBackOff") || rep.Rollback == nil || !rep.Rollback.OK || rep.Rollback.Revision != "1" {
			t.Fatalf("report: %s (%s), rollback %+v", rep.Verdict, rep.Reason, rep.Rollback)
		}
		after := c.get(t, ns, "api")
		if !templatesEqual(after.Spec.Template, before.Spec.Template) {
			t.Fatalf("the template is not revision 1's after the resumed rollback: %s", after.Spec.Template.Spec.Containers[0].Image)
		}
		// One undo: revision 1 came back as 3, and nothing moved since.
		rev, sets := c.revisionNumbers(t, ns, "api")
		if rev != "3" {
			t.Fatalf("deployment revision %s (replica sets %v), want 3 after one undo", rev, sets)
		}
		again := startProcess(t, bin, "watch", "--resume", state)
		if code := again.wait(t, 30*time.Second); code != 1 || !strings.Contains(again.out.String(), "had already ended") {
			t.Fatalf("a resume of the ended watch: exit %d\n%s", code, again.out)
		}
		if rev2, _ := c.revisionNumbers(t, ns, "api"); rev2 != "3" {
			t.Fatalf("revision %s after a second resume, want 3", rev2)
		}
	})

	t.Run("killed after the undo was made, resumed: no second undo", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		// Revision 1 becomes ready slowly and Recreate replaces every pod,
		// so the rollback waits for new pods of revision 1 long enough to
		// be killed between the undo and its end.
		c.deployment(t, ns, "api", "deploywatch.test/api:slowready", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		})
		p, state, report := run(t, ns)
		p.waitEvent(t, 2*time.Minute, `"event":"rollback_started"`)
		waitFor(t, "the undo", 30*time.Second, func() bool { return c.image(t, ns, "api") == "deploywatch.test/api:slowready" })
		p.kill(t)
		// The controller numbers the revision shortly after the undo.
		var sets []string
		waitFor(t, "revision 3", 30*time.Second, func() bool {
			var rev string
			rev, sets = c.revisionNumbers(t, ns, "api")
			return rev == "3"
		})
		if saved := readReport(t, report); saved.Verdict != watch.InProgress || saved.Phases[len(saved.Phases)-1].Name != watch.PhaseRollback {
			t.Fatalf("the killed process's report: verdict %s, phases %v", saved.Verdict, phaseNames(saved))
		}
		r := startProcess(t, bin, "watch", "--resume", state, "-o", "json")
		if code := r.wait(t, 2*time.Minute); code != 1 {
			t.Fatalf("resume: exit %d, want 1\n%s", code, r.out)
		}
		rep := readReport(t, report)
		if rep.Rollback == nil || !rep.Rollback.OK || !strings.Contains(rep.Rollback.Note, "already matches revision") {
			t.Fatalf("rollback %+v, want it finished without a second undo", rep.Rollback)
		}
		if rev2, sets2 := c.revisionNumbers(t, ns, "api"); rev2 != "3" || len(sets2) != len(sets) {
			t.Fatalf("revision %s (%v) after the resume, want 3 (%v): a second undo was made", rev2, sets2, sets)
		}
		c.waitRolledOut(t, ns, "api")
	})
}
