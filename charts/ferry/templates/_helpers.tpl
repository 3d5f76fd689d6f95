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

{{/* The operator's model access (FERRY_MODEL_ACCESS) as JSON: operator.modelAccess, else the
models namespace may deploy any model and no other namespace any. Also which namespaces can have
Ferry's predictor pods (the MLflow NetworkPolicy admits only those). */}}
{{- define "ferry.modelAccess" -}}
{{- .Values.operator.modelAccess | default (dict (include "ferry.modelNamespace" .) (list "*")) | toJson -}}
{{- end -}}

{{/* FERRY_PREDICTOR_NETWORK_POLICY: who may reach predictor pods (the operator writes it as the
NetworkPolicy <md>-predictors of each ModelDeployment; ferry_operator.netpolicy). Their traffic
port: this release's gateway (client requests, shadow traffic) and operator (the smoke test calls
the preview directly). Their metrics port: networkPolicy.metricsFrom, a peer without a namespace
selector meaning this release's namespace, as it does in the chart's own policies. "off" when
networkPolicy.enabled is false. */}}
{{- define "ferry.predictorNetworkPolicy" -}}
{{- if .Values.networkPolicy.enabled -}}
{{- $release := dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace) -}}
{{- $traffic := list -}}
{{- range $component := list "gateway" "operator" -}}
{{- $pods := dict "matchLabels" (include "ferry.selectorLabels" (list $ $component) | fromYaml) -}}
{{- $traffic = append $traffic (dict "namespaceSelector" $release "podSelector" $pods) -}}
{{- end -}}
{{- $metrics := list -}}
{{- range $peer := .Values.networkPolicy.metricsFrom -}}
{{- if or (hasKey $peer "namespaceSelector") (hasKey $peer "ipBlock") -}}
{{- $metrics = append $metrics $peer -}}
{{- else -}}
{{- $metrics = append $metrics (merge (dict "namespaceSelector" $release) $peer) -}}
{{- end -}}
{{- end -}}
{{- dict "trafficFrom" $traffic "metricsFrom" $metrics | toJson -}}
{{- else -}}
off
{{- end -}}
{{- end -}}

{{/* The Secret whose tls.crt/tls.key the operator's webhook receiver serves. */}}
{{- define "ferry.webhookTlsSecret" -}}
{{- default (printf "%s-webhook-tls" (include "ferry.component" (list . "operator"))) .Values.operator.webhook.tlsSecretName -}}
{{- end -}}
