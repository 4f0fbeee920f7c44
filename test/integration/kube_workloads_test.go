package integration

import (
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/deploywatch/deploywatch/internal/config"
	"github.com/deploywatch/deploywatch/internal/platform/kube"
	"github.com/deploywatch/deploywatch/internal/watch"
)

func podTemplate(name, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: image}}},
	}
}

// statefulSet creates a StatefulSet with the default OrderedReady policy
// and rolling updates, and waits for its rollout.
func (c *cluster) statefulSet(t *testing.T, ns, name, image string) {
	t.Helper()
	replicas := int32(2)
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image),
		},
	}
	if _, err := c.cs.AppsV1().StatefulSets(ns).Create(context.Background(), set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.rolloutStatus(t, ns, "statefulset/"+name)
}

// daemonSet creates a DaemonSet (one pod on each of the two fake nodes)
// and waits for its rollout.
func (c *cluster) daemonSet(t *testing.T, ns, name, image string) {
	t.Helper()
	set := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image),
		},
	}
	if _, err := c.cs.AppsV1().DaemonSets(ns).Create(context.Background(), set, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.rolloutStatus(t, ns, "daemonset/"+name)
}

// rolloutStatus waits with the built kubectl's rollout status.
func (c *cluster) rolloutStatus(t *testing.T, ns, what string) {
	t.Helper()
	if out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "rollout", "status", what, "--timeout=90s").CombinedOutput(); err != nil {
		t.Fatalf("kubectl rollout status %s: %v\n%s", what, err, out)
	}
}

// template reads the pod template of a StatefulSet or DaemonSet.
func (c *cluster) template(t *testing.T, ns, what string) corev1.PodTemplateSpec {
	t.Helper()
	kind, name, _ := strings.Cut(what, "/")
	switch kind {
	case "statefulset":
		set, err := c.cs.AppsV1().StatefulSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return set.Spec.Template
	default:
		set, err := c.cs.AppsV1().DaemonSets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return set.Spec.Template
	}
}

// podsReadyOn reports whether all of the workload's pods are ready and
// run image.
func (c *cluster) podsReadyOn(t *testing.T, ns, app, image string, want int) bool {
	t.Helper()
	pods, err := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Spec.Containers[0].Image != image {
			return false
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n == want
}

// TestKubernetesStuckStatefulSetRolledBackByHand: a StatefulSet stuck on
// a crash-looping pod (kubectl set image, no deploywatch watching) is
// recovered by `deploywatch rollback`, which reverts the template and then
// deletes the stuck pod that the StatefulSet would wait on forever.
func TestKubernetesStuckStatefulSetRolledBackByHand(t *testing.T) {
	c := kubeCluster(t)
	t.Parallel()
	ns := c.namespace(t)
	c.statefulSet(t, ns, "db", "deploywatch.test/api:v1")
	if out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "set", "image", "statefulset/db", "api=deploywatch.test/api:crashloop").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitFor(t, "db-1 crash-looping", 60*time.Second, func() bool {
		p, err := c.cs.CoreV1().Pods(ns).Get(context.Background(), "db-1", metav1.GetOptions{})
		if err != nil || p.Spec.Containers[0].Image != "deploywatch.test/api:crashloop" {
			return false
		}
		for _, st := range p.Status.ContainerStatuses {
			if st.State.Waiting != nil && st.State.Waiting.Reason == "CrashLoopBackOff" {
				return true
			}
		}
		return false
	})
	cfg := workloadConfigFile(t, ns, "statefulset", "db", "", "")
	code, out, _ := c.deploywatch(t, "rollback", "-f", cfg)
	if code != 0 || !strings.Contains(out, "revision 1 available again") || !strings.Contains(out, "deleted 1 stuck pod") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	if !c.podsReadyOn(t, ns, "db", "deploywatch.test/api:v1", 2) {
		t.Fatal("the rollback returned before every pod was ready on v1")
	}
}

func TestKubernetesStatefulSetAndDaemonSet(t *testing.T) {
	c := kubeCluster(t)
	setImage := func(ns, what, tag string) []string {
		return []string{c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "set", "image", what, "api=deploywatch.test/api:" + tag}
	}

	for _, k := range []struct{ field, name string }{{"statefulset", "db"}, {"daemonset", "agent"}} {
		create := func(ns, name, image string) {
			if k.field == "statefulset" {
				c.statefulSet(t, ns, name, image)
			} else {
				c.daemonSet(t, ns, name, image)
			}
		}
		what := k.field + "/" + k.name

		t.Run(k.field+": a good image rolls out and ends stable", func(t *testing.T) {
			t.Parallel()
			ns := c.namespace(t)
			create(ns, k.name, "deploywatch.test/api:v1")
			cfg := workloadConfigFile(t, ns, k.field, k.name, "", "")
			code, out, r := c.deploywatch(t, append([]string{"run", "-f", cfg, "--version", "v2", "--"}, setImage(ns, what, "v2")...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, out)
			}
			if r.Deploy.PreviousVersion != "1" {
				t.Errorf("previous version %q, want revision 1", r.Deploy.PreviousVersion)
			}
			if pods := findReportCheck(r, watch.PodsCheck); pods == nil || pods.Value == nil || *pods.Value != 1 {
				t.Errorf("pods check %+v, want all ready pods on the new revision", pods)
			}

			// Queries of the new version select exactly its pods.
			kc := config.KubernetesTarget{Namespace: ns, GitOps: config.GitOpsRespect, RestartLimit: 2, NotReadyGrace: config.Duration(time.Minute)}
			if k.field == "statefulset" {
				kc.StatefulSet = k.name
			} else {
				kc.DaemonSet = k.name
			}
			target, err := kube.New(context.Background(), c.rc, kc, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer target.Close()
			d := watch.Deploy{Service: k.name, StartedAt: time.Now()}
			if prev, err := target.Current(context.Background(), d, true); err != nil || prev != "1" {
				t.Fatalf("pinned %q, %v; want revision 1", prev, err)
			}
			if _, err := target.Health(context.Background(), d); err != nil {
				t.Fatal(err)
			}
			vars := target.QueryVars(context.Background(), d, false)
			pods, err := c.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + k.name})
			if err != nil {
				t.Fatal(err)
			}
			re := regexp.MustCompile("^(?:" + vars[config.VarPods] + ")$")
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					continue
				}
				if !re.MatchString(p.Name) || p.Labels["controller-revision-hash"] != vars[config.VarPodTemplateHash] {
					t.Errorf("pod %s (hash %s) not selected by $pods %q / $pod_template_hash %q",
						p.Name, p.Labels["controller-revision-hash"], vars[config.VarPods], vars[config.VarPodTemplateHash])
				}
			}
			if len(pods.Items) == 0 || vars[config.VarWorkload] != k.name {
				t.Errorf("%d pods, vars %v", len(pods.Items), vars)
			}

			// The rollback command: a dry run shows kubectl's patch and
			// changes nothing; then back to revision 1 for real.
			code, out, _ = c.deploywatch(t, "rollback", "-f", cfg, "--dry-run")
			if code != 0 || !strings.Contains(out, "would roll back to revision 1") ||
				!strings.Contains(out, "application/strategic-merge-patch+json") || !strings.Contains(out, `"$patch":"replace"`) {
				t.Fatalf("dry run: exit %d\n%s", code, out)
			}
			if img := c.template(t, ns, what).Spec.Containers[0].Image; img != "deploywatch.test/api:v2" {
				t.Fatalf("the dry run changed the %s to %s", k.field, img)
			}
			if code, out, _ := c.deploywatch(t, "rollback", "-f", cfg, "--to-revision", "1"); code != 0 || !strings.Contains(out, "patched the pod template back to revision 1") {
				t.Fatalf("rollback: exit %d\n%s", code, out)
			}
			if img := c.template(t, ns, what).Spec.Containers[0].Image; img != "deploywatch.test/api:v1" {
				t.Fatalf("after the rollback the %s runs %s", k.field, img)
			}
		})

		t.Run(k.field+": a crash-looping image is rolled back like kubectl rollout undo", func(t *testing.T) {
			t.Parallel()
			ns := c.namespace(t)
			create(ns, k.name, "deploywatch.test/api:v1")
			before := c.template(t, ns, what)
			cfg := workloadConfigFile(t, ns, k.field, k.name, "", "")
			start := time.Now()
			// As deploy/rbac.yaml's service account: its Role must cover
			// ControllerRevisions and the StatefulSet's stuck-pod deletion.
			sa := c.asServiceAccount(t, ns)
			code, out, r := sa.deploywatch(t, append([]string{"run", "-f", cfg, "--version", "v2", "--"}, setImage(ns, what, "crashloop")...)...)
			if code != 1 || !strings.Contains(r.Reason, "CrashLoopBackOff") || !strings.Contains(r.Reason, "pod "+k.name+"-") {
				t.Fatalf("exit %d, reason %q\n%s", code, r.Reason, out)
			}
			if rb := r.Rollback; rb == nil || !rb.Performed || !rb.OK || rb.Revision != "1" {
				t.Fatalf("rollback %+v\n%s", r.Rollback, out)
			}
			t.Logf("detected and rolled back in %s: %s", time.Since(start).Round(time.Second), r.Rollback.Note)
			after := c.template(t, ns, what)
			if !equality.Semantic.DeepEqual(after, before) {
				t.Fatalf("template after the rollback differs from revision 1:\n%+v\n%+v", after, before)
			}
			waitFor(t, "every pod ready on v1 again", 60*time.Second, func() bool { return c.podsReadyOn(t, ns, k.name, "deploywatch.test/api:v1", 2) })

			// kubectl's undo of the same change on an identical twin.
			twin := k.name + "-twin"
			create(ns, twin, "deploywatch.test/api:v1")
			if out, err := exec.Command(setImage(ns, k.field+"/"+twin, "crashloop")[0], setImage(ns, k.field+"/"+twin, "crashloop")[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			waitFor(t, "the twin's second revision", 30*time.Second, func() bool {
				revs, err := c.cs.AppsV1().ControllerRevisions(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=" + twin})
				return err == nil && len(revs.Items) == 2
			})
			if out, err := exec.Command(c.kubectl, "--kubeconfig", c.kubeconfig, "-n", ns, "rollout", "undo", k.field+"/"+twin, "--to-revision=1").CombinedOutput(); err != nil {
				t.Fatalf("kubectl rollout undo: %v\n%s", err, out)
			}
			theirs := c.template(t, ns, k.field+"/"+twin)
			ours := *after.DeepCopy()
			ours.Labels["app"], theirs.Labels["app"] = "x", "x"
			if !equality.Semantic.DeepEqual(ours, theirs) {
				t.Errorf("kubectl's undo and ours differ:\n%+v\n%+v", theirs, ours)
			}
		})
	}
}
