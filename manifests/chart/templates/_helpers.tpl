{{/*
The labels every object carries: those of manifests/base (its kustomization adds
app.kubernetes.io/part-of to each object's own labels). No Helm-specific labels, so the chart
renders the very objects of manifests/install.yaml.
*/}}
{{- define "ferrolb.partOf" -}}
app.kubernetes.io/part-of: ferrolb
{{- end }}

{{/* The labels selecting one component's pods (never change: selectors are immutable). */}}
{{- define "ferrolb.selectorLabels" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* The image of both binaries. */}}
{{- define "ferrolb.image" -}}
{{- printf "%s:%s" .Values.image.repository (toString (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}
