{{/*
Helper templates for adding inferwatch to a workload of your own (mode: sidecar). Each takes
the inferwatch chart's context: from a parent chart that depends on this one (alias
"inferwatch"), pass

  (dict "Values" .Values.inferwatch "Release" .Release "Chart" (dict "Name" "inferwatch" "Version" "<chart version>" "AppVersion" "<app version>") "Template" .Template)

or simply use `include "inferwatch.sidecar.context" .` as below. See README.md,
"Native sidecar", and helm/examples/model-with-sidecar.

  inferwatch.sidecar.initContainer  the container, as a native sidecar: put it under
                                    spec.template.spec.initContainers
  inferwatch.sidecar.volumes        its volumes: put them under spec.template.spec.volumes
  inferwatch.sidecarPodLabels       labels for the pod template (the monitors select them)
  inferwatch.sidecar.configChecksum annotation value that restarts pods on config changes
*/}}

{{/* The container, shared by the standalone Deployment (as a regular container) and the
native sidecar (as an init container with restartPolicy: Always). */}}
{{- define "inferwatch.container" -}}
name: inferwatch
image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
imagePullPolicy: {{ .Values.image.pullPolicy }}
args: ["run", "--config", "/etc/inferwatch/inferwatch.toml"]
ports:
  - name: proxy
    containerPort: {{ .Values.ports.proxy }}
    protocol: TCP
  - name: admin
    containerPort: {{ .Values.ports.admin }}
    protocol: TCP
{{- if or .Values.env .Values.gpu.visibleDevices }}
env:
  {{- with .Values.gpu.visibleDevices }}
  # The model container's GPUs, for NVML (no nvidia.com/gpu request: not a GPU of its own).
  - name: NVIDIA_VISIBLE_DEVICES
    value: {{ . | quote }}
  {{- end }}
  {{- with .Values.env }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
startupProbe:
  httpGet:
    path: /healthz
    port: admin
    {{- if .Values.webConfig.secretName }}
    # TLS on the admin port (the kubelet does not verify the certificate; the probe paths need
    # no credentials).
    scheme: HTTPS
    {{- end }}
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
    {{- if .Values.webConfig.secretName }}
    # TLS on the admin port (the kubelet does not verify the certificate; the probe paths need
    # no credentials).
    scheme: HTTPS
    {{- end }}
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
    {{- if .Values.webConfig.secretName }}
    # TLS on the admin port (the kubelet does not verify the certificate; the probe paths need
    # no credentials).
    scheme: HTTPS
    {{- end }}
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
{{- if gt (int .Values.preStopSleepSeconds) 0 }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml .Values.resources | nindent 2 }}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
volumeMounts:
  - name: inferwatch-config
    mountPath: /etc/inferwatch
    readOnly: true
  - name: inferwatch-tmp
    mountPath: /tmp
  {{- if .Values.webConfig.secretName }}
  # The web config file and the certificates it names; a whole-secret mount (no subPath), so
  # rotated certificates reach the files and inferwatch reloads them.
  - name: inferwatch-web
    mountPath: /etc/inferwatch-web
    readOnly: true
  {{- end }}
{{- end }}

{{- define "inferwatch.sidecar.initContainer" -}}
{{ include "inferwatch.container" . }}
# A native sidecar: started before the app containers, restarted if it exits, stopped after them.
restartPolicy: Always
{{- end }}

{{- define "inferwatch.sidecar.volumes" -}}
- name: inferwatch-config
  configMap:
    name: {{ include "inferwatch.fullname" . }}
- name: inferwatch-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.webConfig.secretName }}
- name: inferwatch-web
  secret:
    secretName: {{ .Values.webConfig.secretName }}
{{- end }}
{{- end }}

{{- define "inferwatch.sidecarPodLabels" -}}
inferwatch.dev/sidecar: {{ include "inferwatch.fullname" . }}
{{- end }}

{{- define "inferwatch.sidecar.configChecksum" -}}
{{ include "inferwatch.configToml" . | sha256sum }}
{{- end }}
