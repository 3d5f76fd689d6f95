{{/*
What the chart needs but does not create, looked up on the live cluster at install and upgrade
(templates/prerequisites.yaml fails with the list). Each missing item is one "  - ..." block
naming the value it comes from and the command that creates it; charts/ferry/README.md
(Prerequisites) lists the same. Not called by `helm template` or a client-side dry run (no
cluster: lookup finds nothing there).
*/}}

{{/* The namespace gateway.modelNamespace names, when it is not the release namespace. */}}
{{- define "ferry.modelNamespace" -}}
{{- default .Release.Namespace .Values.gateway.modelNamespace -}}
{{- end -}}

{{/* True when the chart itself creates the models namespace (gateway.createModelNamespace). */}}
{{- define "ferry.createsModelNamespace" -}}
{{- $ns := include "ferry.modelNamespace" . -}}
{{- if and .Values.gateway.enabled .Values.gateway.createModelNamespace (ne $ns .Release.Namespace) -}}
{{- $existing := lookup "v1" "Namespace" "" $ns -}}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $existing -}}
{{- $ownerNs := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" $existing -}}
{{- /* A namespace someone else made is used as it is (helm could not adopt it). */ -}}
{{- if or (not $existing) (and (eq $owner .Release.Name) (eq $ownerNs .Release.Namespace)) -}}
true
{{- end -}}
{{- end -}}
{{- end -}}

{{/* True when the `helm test` hook is rendered: a key to call with (the dev key in dev mode). */}}
{{- define "ferry.testHook" -}}
{{- if and .Values.gateway.enabled .Values.tests.enabled (or .Values.gateway.devMode .Values.tests.apiKeySecret) -}}
true
{{- end -}}
{{- end -}}

{{/* (dict "ns" NS "name" NAME "value" VALUE-PATH "keys" (list (list K1 K2) (list K3)) "create" ARGS)
One block when the Secret is missing or has none of the key sets (any one set, complete, will do). */}}
{{- define "ferry.prerequisites.secret" -}}
{{- $s := lookup "v1" "Secret" .ns .name -}}
{{- $first := first .keys -}}
{{- $sets := list -}}
{{- range .keys }}{{ $sets = append $sets (join " and " .) }}{{ end -}}
{{- if not $s }}
  - Secret {{ .name }} in namespace {{ .ns }} ({{ .value }}), key {{ join " or " $sets }}:
      kubectl create secret generic {{ .name }} -n {{ .ns }} {{ .create }}
{{- else -}}
{{- $data := $s.data | default dict -}}
{{- $complete := false -}}
{{- range .keys -}}
{{- $set := . -}}
{{- $has := true -}}
{{- range $set }}{{ if not (hasKey $data .) }}{{ $has = false }}{{ end }}{{ end -}}
{{- if $has }}{{ $complete = true }}{{ end -}}
{{- end -}}
{{- if not $complete }}
  - Secret {{ .name }} in namespace {{ .ns }} ({{ .value }}) has no key {{ join " or " $sets }}; add it:
      kubectl patch secret {{ .name }} -n {{ .ns }} --type merge -p '{"stringData":{ {{- range $i, $k := $first }}{{ if $i }},{{ end }}"{{ $k }}":"VALUE"{{ end -}} }}'
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every missing prerequisite, one block each; empty when all are there. */}}
{{- define "ferry.missingPrerequisites" -}}
{{- $rel := .Release.Namespace -}}
{{- $models := include "ferry.modelNamespace" . -}}
{{- $g := .Values.gateway -}}
{{- $modelsExist := or (eq $models $rel) (lookup "v1" "Namespace" "" $models) -}}
{{- /* KServe: the operator creates InferenceServices, the chart a ClusterServingRuntime. */ -}}
{{- $kserve := list -}}
{{- if and .Values.operator.enabled (not (.Capabilities.APIVersions.Has "serving.kserve.io/v1beta1/InferenceService")) -}}
{{- $kserve = append $kserve "InferenceService (serving.kserve.io/v1beta1)" -}}
{{- end -}}
{{- $runtimeServed := .Capabilities.APIVersions.Has "serving.kserve.io/v1alpha1/ClusterServingRuntime" -}}
{{- if and .Values.predictor.runtime.enabled (not $runtimeServed) -}}
{{- $kserve = append $kserve "ClusterServingRuntime (serving.kserve.io/v1alpha1)" -}}
{{- end -}}
{{- if $kserve }}
  - KServe's CRDs: the cluster does not serve {{ join " nor " $kserve }}. Install KServe first (its CRDs and controller), e.g.:
      kubectl apply --server-side -f https://github.com/kserve/kserve/releases/download/v0.17.0/kserve.yaml
{{- end -}}
{{- if and .Values.predictor.runtime.enabled $runtimeServed -}}
{{- $name := .Values.predictor.runtime.name -}}
{{- $csr := lookup "serving.kserve.io/v1alpha1" "ClusterServingRuntime" "" $name -}}
{{- if $csr -}}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $csr -}}
{{- $ownerNs := dig "metadata" "annotations" "meta.helm.sh/release-namespace" "" $csr -}}
{{- if not (and (eq $owner .Release.Name) (eq $ownerNs $rel)) }}
  - ClusterServingRuntime {{ $name }} (predictor.runtime.name) exists and belongs to {{ if $owner }}release {{ $owner }} in namespace {{ $ownerNs }}{{ else }}no helm release (`make install-crds` applies it){{ end }}: delete it, or install with --set predictor.runtime.enabled=false to use it as it is:
      kubectl delete clusterservingruntime {{ $name }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* The models namespace: the gateway's Role is created there, the ModelDeployments live there. */ -}}
{{- if and $g.enabled (not $modelsExist) (not (include "ferry.createsModelNamespace" .)) }}
  - namespace {{ $models }} (gateway.modelNamespace, where the ModelDeployments live; or install with --set gateway.createModelNamespace=true):
      kubectl create namespace {{ $models }}
{{- end -}}
{{- /* The Secrets of this environment, in the release namespace. */ -}}
{{- $secrets := list -}}
{{- if and $g.enabled (not $g.devMode) -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" $g.secretName "value" "gateway.secretName" "keys" (list (list "FERRY_API_KEY_PEPPER")) "create" "--from-literal=FERRY_API_KEY_PEPPER=\"$(openssl rand -hex 32)\"") -}}
{{- end -}}
{{- if and $g.enabled (not .Values.redis.enabled) -}}
{{- $k := .Values.redis.external.key -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" .Values.redis.external.secretName "value" "redis.external.secretName" "keys" (list (list $k)) "create" (printf "--from-literal=%s=redis://REDIS_HOST:6379/0" $k)) -}}
{{- end -}}
{{- if and $g.enabled $g.consumersSecret -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" $g.consumersSecret "value" "gateway.consumersSecret, written by `ferry keys create --file consumers.yaml`" "keys" (list (list "consumers.yaml")) "create" "--from-file=consumers.yaml=./consumers.yaml") -}}
{{- end -}}
{{- $mlflowKeys := list (list "MLFLOW_TRACKING_TOKEN") (list "MLFLOW_TRACKING_USERNAME" "MLFLOW_TRACKING_PASSWORD") -}}
{{- $mlflowSecret := "" -}}
{{- if and .Values.operator.enabled (not .Values.mlflow.enabled) .Values.mlflow.external.credentialsSecret -}}
{{- $mlflowSecret = .Values.mlflow.external.credentialsSecret -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" $mlflowSecret "value" "mlflow.external.credentialsSecret" "keys" $mlflowKeys "create" "--from-literal=MLFLOW_TRACKING_TOKEN=TOKEN") -}}
{{- end -}}
{{- with .Values.operator.predictorCredentialsSecret -}}
{{- /* Needed in each ModelDeployment's namespace: checked in the models namespace (unless the
chart creates that namespace now: NOTES then say to create the Secret there). */ -}}
{{- if and $.Values.operator.enabled (or $modelsExist (not (include "ferry.createsModelNamespace" $))) (not (and (eq . $mlflowSecret) (eq $models $rel))) -}}
{{- $secrets = append $secrets (dict "ns" $models "name" . "value" "operator.predictorCredentialsSecret, in each ModelDeployment's namespace" "keys" $mlflowKeys "create" "--from-literal=MLFLOW_TRACKING_TOKEN=TOKEN") -}}
{{- end -}}
{{- end -}}
{{- $w := .Values.operator.webhook -}}
{{- if and .Values.operator.enabled $w.enabled -}}
{{- $made := false -}}
{{- if $w.generateSecret -}}
{{- /* The chart makes it unless someone else's Secret of that name is there (operator-webhook.yaml). */ -}}
{{- $existing := lookup "v1" "Secret" $rel $w.secretName -}}
{{- $owner := dig "metadata" "annotations" "meta.helm.sh/release-name" "" ($existing | default dict) -}}
{{- if or (not $existing) (eq $owner .Release.Name) }}{{ $made = true }}{{ end -}}
{{- end -}}
{{- if not $made -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" $w.secretName "value" "operator.webhook.secretName: the secret MLflow signs its webhooks with" "keys" (list (list "FERRY_WEBHOOK_SECRET")) "create" "--from-literal=FERRY_WEBHOOK_SECRET=\"$(openssl rand -hex 32)\"") -}}
{{- end -}}
{{- end -}}
{{- if and (include "ferry.testHook" .) .Values.tests.apiKeySecret -}}
{{- $k := .Values.tests.apiKeySecretKey -}}
{{- $secrets = append $secrets (dict "ns" $rel "name" .Values.tests.apiKeySecret "value" (printf "tests.apiKeySecret: an API key of a consumer allowed to call %s, e.g. the one `ferry keys patch` showed" .Values.tests.model) "keys" (list (list $k)) "create" (printf "--from-literal=%s=API_KEY" $k)) -}}
{{- end -}}
{{- $out := "" -}}
{{- range $secrets }}{{ $out = print $out (include "ferry.prerequisites.secret" .) }}{{ end -}}
{{- if and $out (not (lookup "v1" "Namespace" "" $rel)) }}
  - namespace {{ $rel }} (the release namespace: the Secrets below go there; --create-namespace would be too late for them):
      kubectl create namespace {{ $rel }}
{{- end -}}
{{- $out -}}
{{- end -}}
