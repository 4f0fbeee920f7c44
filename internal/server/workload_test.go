package server

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestWorkloadCommitTime(t *testing.T) {
	want := time.Date(2026, 11, 30, 9, 40, 0, 0, time.UTC)
	for _, tc := range []struct {
		name              string
		onWorkload, onPod string
		want              *time.Time
		err               string
	}{
		{name: "absent"},
		{name: "RFC 3339", onWorkload: "2026-11-30T10:40:00+01:00", want: &want},
		{name: "Unix seconds", onWorkload: "1796031600", want: &want},
		{name: "on the pod template", onPod: "2026-11-30T09:40:00Z", want: &want},
		{name: "the workload's first", onWorkload: "2026-11-30T09:40:00Z", onPod: "2020-01-01T00:00:00Z", want: &want},
		{name: "malformed", onWorkload: "yesterday", err: `deploywatch.dev/commit-time="yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann := func(v string) map[string]string {
				if v == "" {
					return nil
				}
				return map[string]string{CommitTimeAnnotation: v}
			}
			wl := workload{meta: metav1.ObjectMeta{Annotations: ann(tc.onWorkload)},
				template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Annotations: ann(tc.onPod)}}}
			got, err := wl.commitTime()
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one with %s", err, tc.err)
				}
			case err != nil:
				t.Fatal(err)
			case (got == nil) != (tc.want == nil) || got != nil && !got.Equal(*tc.want):
				t.Fatalf("commit time %v, want %v", got, tc.want)
			}
		})
	}
}
