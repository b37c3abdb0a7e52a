{{/*
Shared helpers. They read only the shared blocks of values.yaml (image,
config, redis, dask...); a component's own block is passed in by its
template, never read here.
*/}}

{{/* Chart name, truncated to a DNS label. */}}
{{- define "recreate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every resource: the release name, followed by the chart
name unless the release name already contains it.
*/}}
{{- define "recreate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "recreate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods. */}}
{{- define "recreate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "recreate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "recreate.labels" -}}
helm.sh/chart: {{ include "recreate.chart" . }}
{{ include "recreate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: recreate
{{- end }}

{{/*
Labels of one component's resources.
Call with (dict "root" $ "component" "api").
*/}}
{{- define "recreate.componentLabels" -}}
{{ include "recreate.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels that select one component's pods.
Call with (dict "root" $ "component" "api").
*/}}
{{- define "recreate.componentSelectorLabels" -}}
{{ include "recreate.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Names of the resources. */}}
{{- define "recreate.configName" -}}
{{ include "recreate.fullname" . }}-config
{{- end }}

{{- define "recreate.apiName" -}}
{{ include "recreate.fullname" . }}-api
{{- end }}

{{- define "recreate.schedulerName" -}}
{{ include "recreate.fullname" . }}-scheduler
{{- end }}

{{- define "recreate.workerName" -}}
{{ include "recreate.fullname" . }}-worker
{{- end }}

{{- define "recreate.redisCacheName" -}}
{{ include "recreate.fullname" . }}-redis-cache
{{- end }}

{{- define "recreate.redisControlName" -}}
{{ include "recreate.fullname" . }}-redis-control
{{- end }}

{{/* The port the API listens on (fixed: `recreate serve --port`). */}}
{{- define "recreate.apiPort" -}}
8080
{{- end }}

{{/* The port both Redis instances listen on. */}}
{{- define "recreate.redisPort" -}}
6379
{{- end }}

{{/* Address of the Dask scheduler, as the API and the workers use it. */}}
{{- define "recreate.schedulerAddress" -}}
tcp://{{ include "recreate.schedulerName" . }}:{{ .Values.dask.schedulerPort | int64 }}
{{- end }}

{{/* URL of the blob cache (the password comes from the Secret). */}}
{{- define "recreate.cacheRedisUrl" -}}
redis://{{ include "recreate.redisCacheName" . }}:{{ include "recreate.redisPort" . }}/0
{{- end }}

{{/* URL of the control store (the password comes from the Secret). */}}
{{- define "recreate.controlRedisUrl" -}}
redis://{{ include "recreate.redisControlName" . }}:{{ include "recreate.redisPort" . }}/0
{{- end }}

{{/* Name and key of the Secret holding the Redis password. */}}
{{- define "recreate.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else }}
{{- include "recreate.fullname" . }}-redis
{{- end }}
{{- end }}

{{/* Name of the Secret holding the token table; empty when there is none. */}}
{{- define "recreate.authSecretName" -}}
{{- if eq .Values.auth.mode "token" }}
{{- if .Values.auth.existingSecret }}
{{- .Values.auth.existingSecret }}
{{- else if .Values.auth.tokens }}
{{- include "recreate.fullname" . }}-auth
{{- end }}
{{- end }}
{{- end }}

{{/* Where the API container finds the token table. */}}
{{- define "recreate.authTokensDir" -}}
/etc/recreate/auth
{{- end }}

{{/* Name of the Secret whose keys are Butler credential variables. */}}
{{- define "recreate.butlerSecretName" -}}
{{- if .Values.butler.existingSecret }}
{{- .Values.butler.existingSecret }}
{{- else if .Values.butler.secretEnv }}
{{- include "recreate.fullname" . }}-butler
{{- end }}
{{- end }}

{{/* Name of the Secret whose keys are Butler credential files. */}}
{{- define "recreate.butlerFilesSecretName" -}}
{{- if .Values.butler.existingFilesSecret }}
{{- .Values.butler.existingFilesSecret }}
{{- else if .Values.butler.secretFiles }}
{{- include "recreate.fullname" . }}-butler-files
{{- end }}
{{- end }}

{{/*
Image reference of a component: its own image block, falling back to the
shared image. Call with (dict "root" $ "image" .Values.<component>.image).
*/}}
{{- define "recreate.image" -}}
{{- $repository := .image.repository | default .root.Values.image.repository }}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{/* Pull policy of a component; same call as recreate.image. */}}
{{- define "recreate.imagePullPolicy" -}}
{{- .image.pullPolicy | default .root.Values.image.pullPolicy }}
{{- end }}

{{/* The hardened security context of every container. */}}
{{- define "recreate.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop:
    - ALL
{{- end }}

{{/*
Environment of the API and worker containers beyond the ConfigMap: the
Redis password and a writable HOME (the root filesystem is read-only).
*/}}
{{- define "recreate.serviceEnv" -}}
- name: RECREATE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "recreate.redisSecretName" . }}
      key: {{ .Values.redis.existingSecretKey }}
- name: HOME
  value: /tmp
{{- end }}

{{/* envFrom of the API and worker containers: settings and Butler secrets. */}}
{{- define "recreate.serviceEnvFrom" -}}
- configMapRef:
    name: {{ include "recreate.configName" . }}
{{- with include "recreate.butlerSecretName" . }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end }}

{{/*
Init container copying the Butler credential files into an emptyDir with
mode 0600 (a Secret volume's files are group-readable once fsGroup is set,
and lsst.utils' DbAuth refuses those). Call with
(dict "root" $ "image" .Values.<component>.image).
*/}}
{{- define "recreate.butlerFilesInitContainer" -}}
{{- if include "recreate.butlerFilesSecretName" .root }}
- name: copy-butler-secrets
  image: {{ include "recreate.image" . | quote }}
  imagePullPolicy: {{ include "recreate.imagePullPolicy" . }}
  command:
    - /bin/sh
    - -c
    - cp -L /etc/butler/secrets-raw/* {{ .root.Values.butler.filesMountPath }}/ && chmod 0600 {{ .root.Values.butler.filesMountPath }}/*
  resources:
    {{- toYaml .root.Values.butler.initResources | nindent 4 }}
  securityContext:
    {{- include "recreate.containerSecurityContext" .root | nindent 4 }}
  volumeMounts:
    - name: butler-secrets-raw
      mountPath: /etc/butler/secrets-raw
      readOnly: true
    - name: butler-secrets
      mountPath: {{ .root.Values.butler.filesMountPath }}
{{- end }}
{{- end }}

{{/*
The solution store's URI: config.solutionStore, else the mounted claim of
solutionStore.persistence, else empty (none: solutions live in Redis only).
*/}}
{{- define "recreate.solutionStore" -}}
{{- if .Values.config.solutionStore -}}
{{ .Values.config.solutionStore }}
{{- else if .Values.solutionStore.persistence.enabled -}}
{{ .Values.solutionStore.mountPath }}
{{- end -}}
{{- end }}

{{/* Whether the chart makes and mounts the solution store's claim. */}}
{{- define "recreate.solutionClaim" -}}
{{- if and .Values.solutionStore.persistence.enabled (not .Values.config.solutionStore) -}}
{{ include "recreate.fullname" . }}-solutions
{{- end -}}
{{- end }}

{{/* Volume mounts of the API and worker containers. */}}
{{- define "recreate.serviceVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if include "recreate.solutionClaim" . }}
- name: solutions
  mountPath: {{ .Values.solutionStore.mountPath }}
{{- end }}
{{- if include "recreate.butlerFilesSecretName" . }}
- name: butler-secrets
  mountPath: {{ .Values.butler.filesMountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/* Volumes of the API and worker pods. */}}
{{- define "recreate.serviceVolumes" -}}
- name: tmp
  emptyDir: {}
{{- with include "recreate.solutionClaim" . }}
- name: solutions
  persistentVolumeClaim:
    claimName: {{ . }}
{{- end }}
{{- with include "recreate.butlerFilesSecretName" . }}
- name: butler-secrets-raw
  secret:
    secretName: {{ . }}
    defaultMode: 288  # 0440: readable by the pod's fsGroup
- name: butler-secrets
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end }}

{{/*
Fields every pod spec shares, from a component block. Call with
(dict "root" $ "values" .Values.<component>).
*/}}
{{- define "recreate.podSchedulingFields" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .values.podSecurityContext | nindent 2 }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Environment and readiness probe of both Redis containers: the password for
`--requirepass` (expanded by Kubernetes in the arguments) and for redis-cli.
*/}}
{{- define "recreate.redisEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "recreate.redisSecretName" . }}
      key: {{ .Values.redis.existingSecretKey }}
- name: REDISCLI_AUTH
  valueFrom:
    secretKeyRef:
      name: {{ include "recreate.redisSecretName" . }}
      key: {{ .Values.redis.existingSecretKey }}
{{- end }}

{{- define "recreate.redisProbes" -}}
livenessProbe:
  tcpSocket:
    port: redis
  initialDelaySeconds: 10
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 6
readinessProbe:
  exec:
    command:
      - /bin/sh
      - -c
      - redis-cli -h 127.0.0.1 -p {{ include "recreate.redisPort" . }} ping | grep -q PONG
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}
