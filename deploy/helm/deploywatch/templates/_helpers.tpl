{{- define "deploywatch.name" -}}{{ .Release.Name }}{{- end -}}

{{- define "deploywatch.labels" -}}
app.kubernetes.io/name: deploywatch
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "deploywatch.selector" -}}
app.kubernetes.io/name: deploywatch
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "deploywatch.postgres" -}}{{ if .Values.store.postgres.existingSecret }}true{{ end }}{{- end -}}

{{- define "deploywatch.replicas" -}}
{{- if not (kindIs "invalid" .Values.replicas) -}}
{{- if and (gt (int .Values.replicas) 1) (not (include "deploywatch.postgres" .)) -}}
{{- fail "replicas > 1 needs store.postgres.existingSecret: SQLite is one replica's file" -}}
{{- end -}}
{{ .Values.replicas }}
{{- else if include "deploywatch.postgres" . -}}2{{- else -}}1{{- end -}}
{{- end -}}

{{/* The rules serve needs in a watched namespace: exactly what it checks at start. */}}
{{- define "deploywatch.rules" -}}
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
- apiGroups: [apps]
  resources: [replicasets, controllerrevisions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, delete]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
