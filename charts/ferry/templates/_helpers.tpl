{{/* Names, labels and images shared by every template. */}}
{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "ferry.component" (list . "gateway") -> fullname-gateway */}}
{{- define "ferry.component" -}}
{{- $ctx := index . 0 -}}
{{- printf "%s-%s" (include "ferry.fullname" $ctx) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "ferry.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "ferry.labels" -}}
{{ include "ferry.selectorLabels" . }}
{{- $ctx := index . 0 }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ferry
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_" }}
ferry.dev/environment: {{ $ctx.Values.environment | quote }}
{{- end -}}

{{/* "ferry.image" (list . .Values.gateway.image): registry/repository:tag, or repository:tag when
the repository is already a full reference (contains "/", as skaffold sets it). */}}
{{- define "ferry.image" -}}
{{- $ctx := index . 0 -}}
{{- $img := index . 1 -}}
{{- $tag := default (default $ctx.Chart.AppVersion $ctx.Values.image.tag) $img.tag -}}
{{- if contains "/" $img.repository -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- else -}}
{{- printf "%s/%s:%s" $ctx.Values.image.registry $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "ferry.mlflowUrl" -}}
{{- if .Values.mlflow.enabled -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" (include "ferry.component" (list . "mlflow")) .Release.Namespace (int .Values.mlflow.port) -}}
{{- else -}}
{{- .Values.mlflow.external.trackingUri -}}
{{- end -}}
{{- end -}}

{{- define "ferry.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "ferry.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}

{{- define "ferry.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* True when the Prometheus Operator's CRDs are served by the cluster. */}}
{{- define "ferry.hasPrometheusOperator" -}}
{{- if and (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/PrometheusRule") -}}
true
{{- end -}}
{{- end -}}
