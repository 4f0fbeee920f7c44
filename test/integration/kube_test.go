package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/deploywatch/deploywatch/internal/cli"
	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/judge"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
	"github.com/deploywatch/deploywatch/internal/testenv"
	"github.com/deploywatch/deploywatch/internal/watch"
)

// cluster is the control plane scripts/test.sh starts
// (scripts/kube-cluster.sh up), named by DEPLOYWATCH_KUBECONFIG.
type cluster struct {
	kubeconfig string
	kubectl    string
	rc         *rest.Config
	cs         *kubernetes.Clientset
}

// kubeCluster is the shared control plane and the kubectl built with it.
func kubeCluster(t testing.TB) *cluster {
	t.Helper()
	path := os.Getenv("DEPLOYWATCH_KUBECONFIG")
	if path == "" {
		testenv.Missing(t, "a Kubernetes control plane", "scripts/kube-cluster.sh up DIR, then DEPLOYWATCH_KUBECONFIG=DIR/kubeconfig")
	}
	c := clusterAt(t, path)
	if c.kubectl == "" {
		testenv.Missing(t, "kubectl 1.37", "scripts/kube-cluster.sh builds it; DEPLOYWATCH_KUBECTL names it")
	}
	return c
}

func clusterAt(t testing.TB, path string) *cluster {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{kubeconfig: path, kubectl: os.Getenv("DEPLOYWATCH_KUBECTL"), rc: rc, cs: cs}
}

// namespace makes a namespace for one test.
func (c *cluster) namespace(t testing.TB) string {
	t.Helper()
	ns := fmt.Sprintf("dw-%08x", rand.Uint32())
	t.Logf("namespace %s", ns)
	_, err := c.cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

// deployment creates a Deployment running image and waits for its rollout.
func (c *cluster) deployment(t *testing.T, ns, name, image string, mutate func(*appsv1.Deployment)) *appsv1.Deployment {
	t.Helper()
	replicas := int32(2)
	deadline := int32(600)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			ProgressDeadlineSeconds: &deadline,
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}},
			},
		},
	}
	if mutate != nil {
		mutate(d)
	}
	if _, err := c.cs.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitRolledOut(t, ns, name)
	return c.get(t, ns, name)
}

// twoRevisions makes Deployment api with revision 1 running v1 and
// revision 2 running v2, rolled out.
func (c *cluster) twoRevisions(t *testing.T, ns string) {
	t.Helper()
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
	c.setImage(t, ns, "api", "deploywatch.test/api:v2")
	c.waitRolledOut(t, ns, "api")
}

func (c *cluster) get(t *testing.T, ns, name string) *appsv1.Deployment {
	t.Helper()
	d, err := c.cs.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (c *cluster) waitRolledOut(t *testing.T, ns, name string) {
	t.Helper()
	waitFor(t, "the rollout of "+name, 60*time.Second, func() bool {
		d := c.get(t, ns, name)
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == *d.Spec.Replicas &&
			d.Status.AvailableReplicas == *d.Spec.Replicas && d.Status.Replicas == *d.Spec.Replicas
	})
}

func (c *cluster) setImage(t *testing.T, ns, name, image string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"api","image":%q}]}}}}`, image)
	if _, err := c.cs.AppsV1().Deployments(ns).Patch(context.Background(), name, "application/strategic-merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) image(t *testing.T, ns, name string) string {
	t.Helper()
	return c.get(t, ns, name).Spec.Template.Spec.Containers[0].Image
}

// kubeConfigFile writes a deploywatch.yaml for a Deployment target.
func kubeConfigFile(t *testing.T, ns, name, extraTarget, extra string) string {
	t.Helper()
	return workloadConfigFile(t, ns, "deployment", name, extraTarget, extra)
}

// workloadConfigFile writes a deploywatch.yaml for a Kubernetes target
// whose workload is given by its field: deployment, statefulset or
// daemonset.
func workloadConfigFile(t *testing.T, ns, field, name, extraTarget, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "deploywatch.yaml")
	src := fmt.Sprintf(`service: %[2]s
target:
  kubernetes:
    namespace: %[1]s
    %[5]s: %[2]s
%[3]sphases:
  rollout: 2m
  warmup: 2s
  monitor: 8s
  interval: 1s
%[4]s`, ns, name, extraTarget, extra, field)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (c *cluster) deploywatch(t *testing.T, args ...string) (int, string, *watch.Report) {
	t.Helper()
	return c.deploywatchTo(t, &syncBuffer{}, args...)
}

// deploywatchTo is deploywatch with the output written to out as it comes.
func (c *cluster) deploywatchTo(t *testing.T, out *syncBuffer, args ...string) (int, string, *watch.Report) {
	t.Helper()
	report := filepath.Join(t.TempDir(), "report.json")
	flags := []string{"--kubeconfig", c.kubeconfig}
	if args[0] == "run" || args[0] == "watch" {
		flags = append(flags, "--report", report)
	}
	// Flags go before "--": what follows it is the deploy command.
	cut := len(args)
	for i, a := range args {
		if a == "--" {
			cut = i
			break
		}
	}
	args = append(append(append([]string{}, args[:cut]...), flags...), args[cut:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := cli.Run(ctx, args, out, out, cli.WithEnv(func(k string) (string, bool) {
		if k == "PATH" {
			return os.Getenv("PATH"), true
		}
		return "", false
	}))
	if args[0] != "run" && args[0] != "watch" {
		return code, out.String(), nil
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("exit %d without a report: %v\n%s", code, err, out.String())
	}
	r := &watch.Report{}
	if err := json.Unmarshal(data, r); err != nil {
		t.Fatal(err)
	}
	return code, out.String(), r
}

// runSetImage runs deploywatch run with kubectl set image as the deploy.
func (c *cluster) runSetImage(t *testing.T, ns, cfg, tag string) (int, string, *watch.Report) {
	t.Helper()
	return c.deploywatch(t, "run", "-f", cfg, "--version", "v2", "--",
		c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "set", "image", "deployment/api", "api=deploywatch.test/api:"+tag)
}

// templatesEqual compares pod templates without the hash label.
func templatesEqual(a, b corev1.PodTemplateSpec) bool {
	a, b = *a.DeepCopy(), *b.DeepCopy()
	delete(a.Labels, "pod-template-hash")
	delete(b.Labels, "pod-template-hash")
	return equality.Semantic.DeepEqual(a, b)
}

func TestKubernetes(t *testing.T) {
	c := kubeCluster(t)

	t.Run("a good image rolls out and ends stable", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
		cfg := kubeConfigFile(t, ns, "api", "", "")
		code, out, r := c.runSetImage(t, ns, cfg, "v2")
		if code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if r.Deploy.PreviousVersion != "1" || c.image(t, ns, "api") != "deploywatch.test/api:v2" {
			t.Fatalf("previous %q, image %s", r.Deploy.PreviousVersion, c.image(t, ns, "api"))
		}
		if pods := findReportCheck(r, watch.PodsCheck); pods == nil || pods.Verdict != judge.Pass || pods.Value == nil || *pods.Value != 1 {
			t.Errorf("pods check %+v, want pass with all ready pods on the new version", pods)
		}
	})

	t.Run("a crash-looping image is rolled back like kubectl rollout undo", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		before := c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
		c.deployment(t, ns, "twin", "deploywatch.test/api:v1", nil)
		cfg := kubeConfigFile(t, ns, "api", "", "")
		start := time.Now()
		code, out, r := c.runSetImage(t, ns, cfg, "crashloop")
		if code != 1 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if !strings.Contains(r.Reason, "CrashLoopBackOff") || !strings.Contains(r.Reason, "pod api-") {
			t.Errorf("reason %q does not name the pod and CrashLoopBackOff", r.Reason)
		}
		if rb := r.Rollback; rb == nil || !rb.Performed || !rb.OK || rb.Revision != "1" {
			t.Fatalf("rollback %+v", r.Rollback)
		}
		t.Logf("crash loop detected and rolled back in %s (%s)", time.Since(start).Round(time.Second), r.Rollback.Note)
		after := c.get(t, ns, "api")
		if !templatesEqual(after.Spec.Template, before.Spec.Template) {
			t.Fatalf("template after the rollback differs from revision 1:\n%+v\n%+v", after.Spec.Template, before.Spec.Template)
		}
		// The same change undone by kubectl on an identical Deployment.
		c.setImage(t, ns, "twin", "deploywatch.test/api:crashloop")
		waitFor(t, "twin revision 2", 30*time.Second, func() bool { return c.get(t, ns, "twin").Annotations["deployment.kubernetes.io/revision"] == "2" })
		if out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "rollout", "undo", "deployment/twin", "--to-revision=1").CombinedOutput(); err != nil {
			t.Fatalf("kubectl rollout undo: %v\n%s", err, out)
		}
		c.waitRolledOut(t, ns, "twin")
		after = c.get(t, ns, "api")
		twin := c.get(t, ns, "twin")
		twinTmpl, ourTmpl := twin.Spec.Template.DeepCopy(), after.Spec.Template.DeepCopy()
		twinTmpl.Labels["app"], ourTmpl.Labels["app"] = "x", "x"
		if !templatesEqual(*twinTmpl, *ourTmpl) {
			t.Errorf("kubectl's undo and ours differ:\n%+v\n%+v", twinTmpl, ourTmpl)
		}
		if after.Annotations["deployment.kubernetes.io/revision"] != twin.Annotations["deployment.kubernetes.io/revision"] {
			t.Errorf("revision after undo: ours %s, kubectl's %s", after.Annotations["deployment.kubernetes.io/revision"], twin.Annotations["deployment.kubernetes.io/revision"])
		}
	})

	t.Run("watch after the rollout finished pins the previous revision", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.twoRevisions(t, ns)
		c.setImage(t, ns, "api", "deploywatch.test/api:crashloop")
		cfg := kubeConfigFile(t, ns, "api", "", "")
		code, out, r := c.deploywatch(t, "watch", "-f", cfg, "--version", "v3")
		if code != 1 || r.Deploy.PreviousVersion != "2" || r.Rollback == nil || !r.Rollback.OK {
			t.Fatalf("exit %d, previous %q, rollback %+v\n%s", code, r.Deploy.PreviousVersion, r.Rollback, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v2" {
			t.Fatalf("rolled back to %s, want v2 (the revision serving before the deploy)", img)
		}
	})

	t.Run("a rollout past its progress deadline is rolled back", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.deployment(t, ns, "api", "deploywatch.test/api:v1", func(d *appsv1.Deployment) {
			deadline := int32(6)
			d.Spec.ProgressDeadlineSeconds = &deadline
		})
		cfg := kubeConfigFile(t, ns, "api", "    not_ready_grace: 10m\n", "")
		code, out, r := c.runSetImage(t, ns, cfg, "notready")
		if code != 1 || !strings.Contains(r.Reason, "progress deadline") || r.Rollback == nil || !r.Rollback.OK {
			t.Fatalf("exit %d reason %q rollback %+v\n%s", code, r.Reason, r.Rollback, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("image after rollback %s", img)
		}
	})

	// Pod problems that fail the deploy, each named in the reason.
	for _, pc := range []struct {
		name, tag, target string
		reasons           []string // one of them must be in the reason
	}{
		{"pods never ready past the grace fail the deploy", "notready", "    not_ready_grace: 3s\n", []string{"not ready for"}},
		{"an image that cannot be pulled fails fast", "missing", "", []string{"ImagePullBackOff"}},
		{"OOMKilled pods are named", "oom", "", []string{"OOMKilled", "CrashLoopBackOff"}},
	} {
		t.Run(pc.name, func(t *testing.T) {
			t.Parallel()
			ns := c.namespace(t)
			c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
			cfg := kubeConfigFile(t, ns, "api", pc.target, "")
			code, out, r := c.runSetImage(t, ns, cfg, pc.tag)
			if code != 1 || !slices.ContainsFunc(pc.reasons, func(s string) bool { return strings.Contains(r.Reason, s) }) {
				t.Fatalf("exit %d reason %q, want one of %q\n%s", code, r.Reason, pc.reasons, out)
			}
		})
	}

	t.Run("a rollback that never becomes available ends at its timeout", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		// Revision 1 becomes ready only after 15s, and the Recreate strategy
		// removed its pods for the new version: the rollback to it is
		// patched at once but not available within the 3s allowed.
		c.deployment(t, ns, "api", "deploywatch.test/api:slowready", func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
		})
		cfg := kubeConfigFile(t, ns, "api", "    timeouts:\n      rollback: 3s\n", "")
		start := time.Now()
		code, out, r := c.runSetImage(t, ns, cfg, "crashloop")
		if code != 1 || r.Rollback == nil || r.Rollback.OK || !strings.Contains(r.Rollback.Error, "not rolled out within 3s (target.kubernetes.timeouts.rollback)") {
			t.Fatalf("exit %d rollback %+v\n%s", code, r.Rollback, out)
		}
		if took := time.Since(start); took > 60*time.Second {
			t.Errorf("took %s", took)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:slowready" {
			t.Fatalf("image %s: the patch back to revision 1 should stand", img)
		}
	})

	t.Run("a paused Deployment is refused with a clear message", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.twoRevisions(t, ns)
		if _, err := c.cs.AppsV1().Deployments(ns).Patch(context.Background(), "api", "application/merge-patch+json", []byte(`{"spec":{"paused":true}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		cfg := kubeConfigFile(t, ns, "api", "", "")
		code, out, _ := c.deploywatch(t, "rollback", "-f", cfg, "--to-revision", "1")
		if code != 1 || !strings.Contains(out, "is paused: resume it") {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v2" {
			t.Fatalf("a paused Deployment was changed: %s", img)
		}
	})

	t.Run("rollback command: dry run, then to a revision", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.twoRevisions(t, ns)
		cfg := kubeConfigFile(t, ns, "api", "", "")
		code, out, _ := c.deploywatch(t, "rollback", "-f", cfg, "--dry-run")
		if code != 0 || !strings.Contains(out, "would roll back to revision 1") || !strings.Contains(out, `"op":"replace","path":"/spec/template"`) {
			t.Fatalf("dry run: exit %d\n%s", code, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v2" {
			t.Fatal("the dry run changed the Deployment")
		}
		if code, out, _ := c.deploywatch(t, "rollback", "-f", cfg, "--to-revision", "1"); code != 0 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("image %s after the rollback", img)
		}
		if code, out, _ := c.deploywatch(t, "rollback", "-f", cfg, "--to-revision", "9"); code != 1 || !strings.Contains(out, "revision 9") {
			t.Fatalf("a missing revision: exit %d\n%s", code, out)
		}
	})

	t.Run("an Argo CD-managed Deployment is not undone", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.deployment(t, ns, "api", "deploywatch.test/api:v1", func(d *appsv1.Deployment) {
			d.Labels["argocd.argoproj.io/instance"] = "shop-api"
		})
		marker := filepath.Join(t.TempDir(), "reverted")
		cfg := kubeConfigFile(t, ns, "api", fmt.Sprintf("    rollback_command: 'echo reverting $DEPLOYWATCH_VERSION > %s'\n", marker), "")
		code, out, r := c.runSetImage(t, ns, cfg, "crashloop")
		if code != 1 || r.Rollback == nil || r.Rollback.Performed || !strings.Contains(r.Rollback.Note, "Argo CD") {
			t.Fatalf("exit %d rollback %+v\n%s", code, r.Rollback, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:crashloop" {
			t.Fatalf("the Deployment was undone to %s", img)
		}
		if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "reverting v2" {
			t.Fatalf("rollback_command did not run: %q %v", b, err)
		}
	})

	t.Run("least-privilege RBAC is enough to watch and roll back", func(t *testing.T) {
		t.Parallel()
		ns := c.namespace(t)
		c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
		sa := c.asServiceAccount(t, ns)
		c.setImage(t, ns, "api", "deploywatch.test/api:crashloop")
		cfg := kubeConfigFile(t, ns, "api", "", "")
		code, out, r := sa.deploywatch(t, "watch", "-f", cfg, "--version", "v2")
		if code != 1 || r.Rollback == nil || !r.Rollback.OK {
			t.Fatalf("as the deploywatch service account: exit %d %+v\n%s", code, r, out)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("image %s", img)
		}
	})

	t.Run("a rollback retried after a network error does not flip back", func(t *testing.T) {
		t.Parallel()
		ns := badRevisionTwo(t, c)
		// A proxy that lets the first PATCH reach the API server, then drops
		// the connection before the answer: the client sees a network error
		// although the rollback happened.
		proxy, dropped := droppingProxy(t, c.rc)
		rc := rest.CopyConfig(c.rc)
		rc.Host, rc.TLSClientConfig = proxy, rest.TLSClientConfig{}
		target, d := pinnedTarget(t, rc, ns)
		out, err := target.Rollback(context.Background(), d)
		if err != nil {
			t.Fatalf("rollback: %v", err)
		}
		if dropped.Load() != 1 || !strings.Contains(out.Note, "already matches revision") {
			t.Fatalf("dropped %d answers; %q: want the retry to find revision 1's template in place", dropped.Load(), out.Note)
		}
		// Retried again (revision 1 is now revision 3): still no flip back.
		if out, err := target.Rollback(context.Background(), d); err != nil || !strings.Contains(out.Note, "already matches") {
			t.Fatalf("second rollback: %+v %v", out, err)
		}
		if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
			t.Fatalf("image %s", img)
		}
	})
}

// TestRollbackThroughAPIServerFaults: the undo goes through a proxy that
// resets every connection and then drops all traffic for 10 s, as a
// network partition between deploywatch and the API server does. The
// rollback rides it out and is done once: one new revision, the good
// template back.
func TestRollbackThroughAPIServerFaults(t *testing.T) {
	c := kubeCluster(t)
	ns := badRevisionTwo(t, c)
	up, err := url.Parse(c.rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.StartFaultProxy(t, up.Host)
	rc := rest.CopyConfig(c.rc)
	rc.Host = "https://" + proxy.Addr
	target, d := pinnedTarget(t, rc, ns)
	// The fault's schedule: the open connections reset, then nothing gets
	// through for 10 s.
	proxy.Reset()
	proxy.Set(testenv.Fault{Stall: true})
	healed := time.AfterFunc(10*time.Second, func() { proxy.Set(testenv.Fault{}) })
	defer healed.Stop()
	start := time.Now()
	out, err := target.Rollback(context.Background(), d)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("rollback through the partition: %v", err)
	}
	if took < 10*time.Second {
		t.Fatalf("the rollback finished in %s, before the partition healed: the fault did not apply", took)
	}
	if img := c.image(t, ns, "api"); img != "deploywatch.test/api:v1" {
		t.Fatalf("image %s after the rollback", img)
	}
	if rev := c.get(t, ns, "api").Annotations["deployment.kubernetes.io/revision"]; rev != "3" {
		t.Fatalf("revision %s after the rollback: want 3, one undo", rev)
	}
	t.Logf("rolled back through resets and a 10 s partition in %s: %s", took.Round(100*time.Millisecond), out.Note)
}

func findReportCheck(r *watch.Report, name string) *watch.CheckResult {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// asServiceAccount applies deploy/rbac.yaml in ns and returns the cluster
// as seen by its deploywatch service account.
func (c *cluster) asServiceAccount(t *testing.T, ns string) *cluster {
	t.Helper()
	if out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "apply", "-f", "../../deploy/rbac.yaml").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var token string
	waitFor(t, "a token for the service account", 30*time.Second, func() bool {
		out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "create", "token", "deploywatch").Output()
		token = strings.TrimSpace(string(out))
		return err == nil && token != ""
	})
	sa := *c
	sa.kubeconfig = writeKubeconfig(t, c.rc, token, ns)
	return &sa
}

func writeKubeconfig(t *testing.T, rc *rest.Config, token, ns string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	src := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, certificate-authority: %q}}]
users: [{name: sa, user: {token: %q}}]
contexts: [{name: c, context: {cluster: c, user: sa, namespace: %q}}]
current-context: c
`, rc.Host, rc.TLSClientConfig.CAFile, token, ns)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// badRevisionTwo is a namespace with a Deployment api whose revision 2
// (a crash loop) replaced revision 1.
func badRevisionTwo(t *testing.T, c *cluster) string {
	t.Helper()
	ns := c.namespace(t)
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
	c.setImage(t, ns, "api", "deploywatch.test/api:crashloop")
	waitFor(t, "revision 2", 30*time.Second, func() bool { return c.get(t, ns, "api").Annotations["deployment.kubernetes.io/revision"] == "2" })
	return ns
}

// pinnedTarget is the Kubernetes target of api in ns through rc, with
// revision 1 pinned as a watch's Start pins it, and the deploy it judges.
func pinnedTarget(t *testing.T, rc *rest.Config, ns string) (*kube.Target, watch.Deploy) {
	t.Helper()
	target, err := kube.New(context.Background(), rc, config.KubernetesTarget{Namespace: ns, Deployment: "api", GitOps: config.GitOpsRespect, RestartLimit: 2, NotReadyGrace: config.Duration(time.Minute)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(target.Close)
	d := watch.Deploy{Service: "api", Version: "v2", StartedAt: time.Now()}
	pinned, err := target.Current(context.Background(), d, true)
	if err != nil || pinned != "1" {
		t.Fatalf("pinned %q, %v", pinned, err)
	}
	d.PreviousVersion = pinned
	return target, d
}

// droppingProxy forwards plain HTTP to the API server, and closes the
// connection instead of answering the first PATCH (after forwarding it).
func droppingProxy(t *testing.T, rc *rest.Config) (string, *atomic.Int32) {
	t.Helper()
	up, err := url.Parse(rc.Host)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rest.TransportFor(rc)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(up)
	rp.Transport = tr
	var dropped atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && dropped.CompareAndSwap(0, 1) {
			body, _ := io.ReadAll(r.Body)
			req, _ := http.NewRequestWithContext(r.Context(), r.Method, up.String()+r.URL.RequestURI(), bytes.NewReader(body))
			req.Header = r.Header.Clone()
			if resp, err := tr.RoundTrip(req); err == nil {
				resp.Body.Close()
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String(), &dropped
}

// TestKubernetesAPIServerStoppedMidWatch runs a private control plane (the
// shared one must stay up) and stops its API server during the monitor
// phase: the verdict is inconclusive, not a crash and not a rollback.
func TestKubernetesAPIServerStoppedMidWatch(t *testing.T) {
	if os.Getenv("DEPLOYWATCH_KUBECTL") == "" {
		testenv.Missing(t, "the Kubernetes binaries", "scripts/kube-cluster.sh build")
	}
	t.Parallel()
	dir := t.TempDir()
	if out, err := exec.Command("../../scripts/kube-cluster.sh", "up", dir).CombinedOutput(); err != nil {
		t.Fatalf("kube-cluster.sh up: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("../../scripts/kube-cluster.sh", "down", dir).Run() })
	c := clusterAt(t, filepath.Join(dir, "kubeconfig"))
	ns := c.namespace(t)
	c.deployment(t, ns, "api", "deploywatch.test/api:v1", nil)
	cfg := kubeConfigFile(t, ns, "api", "", "judge:\n  error_limit: 2\n")
	out := &syncBuffer{}
	done := make(chan struct{})
	go func() {
		// Stopped once the monitor has looked at the pods with it.
		for !strings.Contains(out.String(), `"event":"measured"`) {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		pid, _ := os.ReadFile(filepath.Join(dir, "pids", "kube-apiserver"))
		_ = exec.Command("kill", strings.TrimSpace(string(pid))).Run()
	}()
	code, _, r := c.deploywatchTo(t, out, "run", "-f", cfg, "--version", "v2", "-o", "json", "--",
		c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "set", "image", "deployment/api", "api=deploywatch.test/api:v2")
	close(done)
	if code != 3 {
		t.Fatalf("exit %d, want 3\n%s", code, out)
	}
	if r.Rollback != nil && r.Rollback.Performed {
		t.Fatalf("rolled back with the API server gone: %+v", r.Rollback)
	}
	last := r.Phases[len(r.Phases)-1]
	if last.Name != watch.PhaseMonitor || last.Outcome != watch.OutcomeInconclusive || !strings.Contains(r.Reason, "could not read the workload's health") {
		t.Errorf("ended in %s (%s): %q; want the monitor inconclusive on the workload's health", last.Name, last.Outcome, r.Reason)
	}
}
