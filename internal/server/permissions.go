package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// permission is one thing serve does to the cluster.
type permission struct {
	group, resource, subresource, verb string
	// why says what it is for, in the message when it is missing.
	why string
}

// permissions are exactly what serve needs in each watched namespace; the
// Helm chart grants these and no more.
var permissions = []permission{
	{"apps", "deployments", "", "list", "find the opted-in Deployments"},
	{"apps", "deployments", "", "watch", "follow their changes"},
	{"apps", "deployments", "", "get", "read a Deployment at each look"},
	{"apps", "deployments", "", "patch", "roll a Deployment back (or pause it)"},
	{"apps", "statefulsets", "", "list", "find the opted-in StatefulSets"},
	{"apps", "statefulsets", "", "watch", "follow their changes"},
	{"apps", "statefulsets", "", "get", "read a StatefulSet at each look"},
	{"apps", "statefulsets", "", "patch", "roll a StatefulSet back"},
	{"apps", "daemonsets", "", "list", "find the opted-in DaemonSets"},
	{"apps", "daemonsets", "", "watch", "follow their changes"},
	{"apps", "daemonsets", "", "get", "read a DaemonSet at each look"},
	{"apps", "daemonsets", "", "patch", "roll a DaemonSet back"},
	{"apps", "replicasets", "", "list", "read a Deployment's revisions"},
	{"apps", "replicasets", "", "watch", "follow a Deployment's revisions"},
	{"apps", "controllerrevisions", "", "list", "read a StatefulSet's or DaemonSet's revisions"},
	{"apps", "controllerrevisions", "", "watch", "follow their revisions"},
	{"", "pods", "", "list", "judge the new pods' health"},
	{"", "pods", "", "watch", "follow the pods"},
	{"", "pods", "", "delete", "unstick a StatefulSet's rollback (its forced rollback)"},
	{"", "pods", "log", "get", "scan the new pods' logs (verify.logs)"},
	{"", "configmaps", "", "get", "read a workload's config (deploywatch.dev/config)"},
	{"", "events", "", "create", "report a workload's config error on it"},
}

// leasePermissions are what leader election needs in its namespace.
var leasePermissions = []permission{
	{"coordination.k8s.io", "leases", "", "get", "read the leader's Lease"},
	{"coordination.k8s.io", "leases", "", "create", "create the Lease"},
	{"coordination.k8s.io", "leases", "", "update", "renew and hand over the Lease"},
}

// checkPermissions asks the API server (SelfSubjectAccessReview) whether
// serve may do all it needs, and names everything missing: better at
// start than at the first rollback.
func (s *Server) checkPermissions(ctx context.Context) error {
	namespaces := s.cfg.Kubernetes.Namespaces
	if s.cfg.Kubernetes.AllNamespaces {
		namespaces = []string{""}
	}
	type want struct {
		permission
		namespace string
	}
	var wants []want
	for _, ns := range namespaces {
		for _, p := range permissions {
			wants = append(wants, want{p, ns})
		}
	}
	if s.cfg.LeaderElection.Enabled {
		for _, p := range leasePermissions {
			wants = append(wants, want{p, s.cfg.LeaderElection.Namespace})
		}
	}
	var missing []string
	for _, w := range wants {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: w.namespace, Verb: w.verb, Group: w.group, Resource: w.resource, Subresource: w.subresource,
			},
		}}
		got, err := s.cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking serve's permissions: %w", err)
		}
		if !got.Status.Allowed {
			res := w.resource
			if w.subresource != "" {
				res += "/" + w.subresource
			}
			if w.group != "" {
				res += "." + w.group
			}
			where := "in every namespace"
			if w.namespace != "" {
				where = "in namespace " + w.namespace
			}
			missing = append(missing, fmt.Sprintf("%s %s %s (to %s)", w.verb, res, where, w.why))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (the Helm chart's RBAC grants them):\n  %s", ErrPermissions, strings.Join(missing, "\n  "))
	}
	return nil
}

// ErrPermissions is serve's identity lacking what it needs in the cluster.
var ErrPermissions = errors.New("serve's service account lacks permissions it needs")
