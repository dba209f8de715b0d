{{/* Names and labels. */}}
{{- define "inferwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inferwatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "inferwatch.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "inferwatch.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "inferwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inferwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inferwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "inferwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "inferwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inferwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The pods whose sidecar the monitors and policies select: this chart's Deployment
(standalone) or the workload that includes the sidecar helper (its pods carry
inferwatch.sidecarPodLabels). */}}
{{- define "inferwatch.podSelectorLabels" -}}
{{- if eq .Values.mode "sidecar" }}
inferwatch.dev/sidecar: {{ include "inferwatch.fullname" . }}
{{- else }}
{{- include "inferwatch.selectorLabels" . }}
{{- end }}
{{- end }}

{{/* inferwatch.toml: .Values.config with the listeners and upstream the chart decides. */}}
{{- define "inferwatch.configToml" -}}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $proxy := deepCopy (get $cfg "proxy" | default dict) }}
{{- $_ := set $proxy "listen" (printf "0.0.0.0:%d" (int .Values.ports.proxy)) }}
{{- if eq .Values.mode "sidecar" }}
{{- $_ := set $proxy "upstream" (printf "http://127.0.0.1:%d" (int .Values.modelPort)) }}
{{- else }}
{{- $_ := set $proxy "upstream" (required "upstream: the model Service's URL (http://host:port) is required in standalone mode" .Values.upstream) }}
{{- end }}
{{- $_ := set $cfg "proxy" $proxy }}
{{- $admin := deepCopy (get $cfg "admin" | default dict) }}
{{- $_ := set $admin "listen" (printf "0.0.0.0:%d" (int .Values.ports.admin)) }}
{{- if .Values.webConfig.secretName }}
{{- $_ := set $admin "web_config_file" (printf "/etc/inferwatch-web/%s" .Values.webConfig.fileName) }}
{{- end }}
{{- $_ := set $cfg "admin" $admin }}
{{- include "inferwatch.tomlTable" (dict "table" $cfg "path" "") }}
{{- end }}

{{- define "inferwatch.terminationGracePeriodSeconds" -}}
{{- $grace := 25 }}
{{- with .Values.config }}{{ with .proxy }}{{ if hasKey . "shutdown_grace_secs" }}{{ $grace = .shutdown_grace_secs }}{{ end }}{{ end }}{{ end }}
{{- add (ceil $grace | int) (int .Values.preStopSleepSeconds) (int .Values.terminationGraceExtraSeconds) }}
{{- end }}

{{/* A TOML writer for the config. Not sprig's toToml: Helm reads every number in values as a
float, and toToml writes 256 as 256.0 and 134217728 as 1.34217728e+08, which inferwatch's
integer keys refuse. Here whole numbers are written as integers (its float keys take those too).
Scalars first, then [sub.tables], then [[arrays.of.tables]] (lists of maps); null keys are left
out, so they take inferwatch's defaults. */}}
{{- define "inferwatch.tomlValue" -}}
{{- if kindIs "string" . }}{{ toJson . }}
{{- else if kindIs "bool" . }}{{ . }}
{{- else if kindIs "slice" . }}[{{ range $i, $x := . }}{{ if $i }}, {{ end }}{{ include "inferwatch.tomlValue" $x }}{{ end }}]
{{- else if kindIs "map" . }}{{ $m := . }}{ {{- range $i, $k := keys $m | sortAlpha }}{{ if $i }},{{ end }} {{ $k }} = {{ include "inferwatch.tomlValue" (get $m $k) }}{{ end }} }
{{- else if eq (float64 .) (floor .) }}{{ printf "%d" (int64 .) }}
{{- else }}{{ toString . }}
{{- end }}
{{- end }}

{{- define "inferwatch.tomlTable" -}}
{{- $t := .table }}
{{- $path := .path }}
{{- range $k := keys $t | sortAlpha }}
{{- $v := get $t $k }}
{{- if not (or (kindIs "invalid" $v) (kindIs "map" $v) (and (kindIs "slice" $v) $v (kindIs "map" (first $v)))) }}
{{ $k }} = {{ include "inferwatch.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $k := keys $t | sortAlpha }}
{{- $v := get $t $k }}
{{- $p := ternary $k (printf "%s.%s" $path $k) (eq $path "") }}
{{- if kindIs "map" $v }}

[{{ $p }}]
{{- include "inferwatch.tomlTable" (dict "table" $v "path" $p) }}
{{- else if and (kindIs "slice" $v) $v (kindIs "map" (first $v)) }}
{{- range $e := $v }}

[[{{ $p }}]]
{{- include "inferwatch.tomlTable" (dict "table" $e "path" $p) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
