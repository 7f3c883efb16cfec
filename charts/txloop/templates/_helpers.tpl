{{/*
Names. "txloop.name": the chart's name (or nameOverride). "txloop.fullname": the prefix of every
object's name, at most 63 characters: fullnameOverride, else the release name, followed by the
chart's name unless the release name contains it already.
*/}}
{{- define "txloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "txloop.fullname" -}}
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

{{/* The chart label's value: name-version. */}}
{{- define "txloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "txloop.mirror.fullname" -}}
{{- printf "%s-mirror" (include "txloop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "txloop.etcd.fullname" -}}
{{- printf "%s-etcd" (include "txloop.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The mirror's ServiceAccount: its given name, else <fullname>-mirror when created, else "default". */}}
{{- define "txloop.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "txloop.mirror.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Labels: Kubernetes' recommended labels and helm.sh/chart. Takes a dict: "root" (the chart's
context) and "component" (mirror, etcd, rbac, demo-bank).
*/}}
{{- define "txloop.labels" -}}
helm.sh/chart: {{ include "txloop.chart" .root }}
{{ include "txloop.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | replace "+" "_" | trunc 63 | quote }}
app.kubernetes.io/part-of: txloop
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end -}}

{{/* The labels a selector matches: name, instance, component. Same dict as txloop.labels. */}}
{{- define "txloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "txloop.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The txloop image: repository@digest when a digest is given, else repository:tag (tag: appVersion). */}}
{{- define "txloop.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default .Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Checks the values the schema cannot check alone; every template that needs etcd includes it, and
templates/validate.yaml does always, so a release without etcd never renders.
*/}}
{{- define "txloop.validate" -}}
{{- $etcd := .Values.etcd -}}
{{- if and $etcd.bundled.enabled $etcd.endpoints -}}
{{- fail "txloop: give either etcd.endpoints (your etcd) or etcd.bundled.enabled=true (a bundled etcd for trying txloop out), not both" -}}
{{- end -}}
{{- if not (or $etcd.bundled.enabled $etcd.endpoints) -}}
{{- fail "txloop: no etcd: set etcd.endpoints to your etcd's client URLs (e.g. --set etcd.endpoints={https://etcd-0.etcd:2379}) or etcd.bundled.enabled=true for a bundled etcd to try txloop out" -}}
{{- end -}}
{{- if and $etcd.tls.enabled (not $etcd.tls.secretName) -}}
{{- fail "txloop: etcd.tls.enabled needs etcd.tls.secretName: a Secret with ca.crt, tls.crt and tls.key" -}}
{{- end -}}
{{- if and $etcd.auth.enabled (not $etcd.auth.secretName) -}}
{{- fail "txloop: etcd.auth.enabled needs etcd.auth.secretName: a Secret with the keys username and password" -}}
{{- end -}}
{{- if and $etcd.bundled.enabled (or $etcd.tls.enabled $etcd.auth.enabled) -}}
{{- fail "txloop: the bundled etcd has no TLS and no authentication: etcd.tls.enabled and etcd.auth.enabled are for an external etcd (etcd.endpoints)" -}}
{{- end -}}
{{- end -}}

{{/* etcd's client URLs, comma-separated: the bundled members' when bundled, else etcd.endpoints. */}}
{{- define "txloop.etcd.endpoints" -}}
{{- include "txloop.validate" . -}}
{{- if .Values.etcd.bundled.enabled -}}
{{- $svc := include "txloop.etcd.fullname" . -}}
{{- $eps := list -}}
{{- range $i := until (int .Values.etcd.bundled.replicas) -}}
{{- $eps = append $eps (printf "http://%s-%d.%s.%s.svc.%s:2379" $svc $i $svc $.Release.Namespace $.Values.clusterDomain) -}}
{{- end -}}
{{- join "," $eps -}}
{{- else -}}
{{- join "," .Values.etcd.endpoints -}}
{{- end -}}
{{- end -}}

{{/* Where the etcd TLS Secret and a sidecar's token Secret are mounted. */}}
{{- define "txloop.etcdTlsDir" -}}/var/run/secrets/txloop/etcd-tls{{- end -}}
{{- define "txloop.tokenDir" -}}/var/run/secrets/txloop/token{{- end -}}

{{/*
The etcd connection as the txloop CLI reads it (TXLOOP_* environment), for the mirror and the
sidecar: endpoints, key prefix, the TLS files' paths, the user and password by secretKeyRef.
Takes the chart's context.
*/}}
{{- define "txloop.etcdEnv" -}}
- name: TXLOOP_ENDPOINTS
  value: {{ include "txloop.etcd.endpoints" . | quote }}
- name: TXLOOP_NAMESPACE
  value: {{ .Values.etcd.keyPrefix | quote }}
{{- if .Values.etcd.tls.enabled }}
- name: TXLOOP_CACERT
  value: {{ printf "%s/ca.crt" (include "txloop.etcdTlsDir" .) }}
{{- if .Values.etcd.tls.clientCertificate }}
- name: TXLOOP_CERT
  value: {{ printf "%s/tls.crt" (include "txloop.etcdTlsDir" .) }}
- name: TXLOOP_KEY
  value: {{ printf "%s/tls.key" (include "txloop.etcdTlsDir" .) }}
{{- end }}
{{- end }}
{{- if .Values.etcd.auth.enabled }}
- name: TXLOOP_USER
  valueFrom:
    secretKeyRef:
      name: {{ .Values.etcd.auth.secretName }}
      key: username
- name: TXLOOP_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.etcd.auth.secretName }}
      key: password
{{- end }}
{{- end -}}

{{/* The etcd TLS Secret's volume mount (nothing without TLS). Takes the chart's context. */}}
{{- define "txloop.etcdVolumeMounts" -}}
{{- if .Values.etcd.tls.enabled }}
- name: txloop-etcd-tls
  mountPath: {{ include "txloop.etcdTlsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The etcd TLS Secret's volume (nothing without TLS), readable by the pod's group. */}}
{{- define "txloop.etcdVolumes" -}}
{{- if .Values.etcd.tls.enabled }}
- name: txloop-etcd-tls
  secret:
    secretName: {{ .Values.etcd.tls.secretName }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
      {{- if .Values.etcd.tls.clientCertificate }}
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
      {{- end }}
{{- end }}
{{- end -}}

{{/*
txloop.sidecar: a `txloop sidecar` container for your own Deployment's containers list. Takes a
dict:
  root                the txloop chart's context: $ in this chart's templates; in a chart that
                      depends on txloop, .Subcharts.txloop (its values hold the etcd connection)
  app                 the txloop app (required): --app
  servicePort         the port your service listens on in the pod (required): the sidecar calls it
                      back at http://127.0.0.1:<servicePort> (--service-url)
  resourcesConfigMap  the ConfigMap holding resources.yaml, your service's callback paths
                      (required; mounted by txloop.sidecarVolumes at /etc/txloop)
  tokenSecret         optional: a Secret whose key `token` (tokenSecretKey) holds the bearer token
                      both directions carry (--token-file)
  tokenSecretKey      optional: that key's name (default token)
  resources           optional: the container's resources (default sidecar.resources)
  extraArgs           optional: more sidecar flags (default sidecar.extraArgs)
The sidecar listens on 127.0.0.1:7480 only, so its probes run inside the container (node's fetch of
/healthz and /readyz): an httpGet probe reaches the pod's IP, where nothing listens.
*/}}
{{- define "txloop.sidecar" -}}
{{- $root := required "txloop.sidecar: give the chart's context as \"root\"" .root -}}
{{- $app := required "txloop.sidecar: give the txloop app as \"app\"" .app -}}
{{- $port := required "txloop.sidecar: give your service's port as \"servicePort\"" .servicePort -}}
{{- $configMap := required "txloop.sidecar: give the resources ConfigMap's name as \"resourcesConfigMap\"" .resourcesConfigMap -}}
{{- $tokenKey := default "token" .tokenSecretKey -}}
{{- $extraArgs := default $root.Values.sidecar.extraArgs .extraArgs -}}
- name: txloop-sidecar
  image: {{ include "txloop.image" $root }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  args:
    - sidecar
    - --app
    - {{ $app | quote }}
    - --service-url
    - {{ printf "http://127.0.0.1:%v" $port | quote }}
    - --listen
    - 127.0.0.1:7480
    - --resources
    - /etc/txloop/resources.yaml
    {{- if .tokenSecret }}
    - --token-file
    - {{ printf "%s/%s" (include "txloop.tokenDir" $root) $tokenKey }}
    {{- end }}
    - --log-level
    - {{ $root.Values.sidecar.logLevel }}
    {{- range $extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    {{- include "txloop.etcdEnv" $root | nindent 4 }}
  livenessProbe:
    exec:
      command:
        - node
        - -e
        - "fetch('http://127.0.0.1:7480/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
    initialDelaySeconds: 10
    periodSeconds: 10
    timeoutSeconds: 5
    failureThreshold: 6
  readinessProbe:
    exec:
      command:
        - node
        - -e
        - "fetch('http://127.0.0.1:7480/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
    initialDelaySeconds: 3
    periodSeconds: 5
    timeoutSeconds: 5
    failureThreshold: 3
  resources:
    {{- toYaml (default $root.Values.sidecar.resources .resources) | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: txloop-resources
      mountPath: /etc/txloop
      readOnly: true
    {{- if .tokenSecret }}
    - name: txloop-token
      mountPath: {{ include "txloop.tokenDir" $root }}
      readOnly: true
    {{- end }}
    {{- with include "txloop.etcdVolumeMounts" $root }}
    {{- . | trim | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
txloop.sidecarVolumes: the volumes txloop.sidecar mounts, for your pod's volumes list. Takes a
dict: root, resourcesConfigMap, tokenSecret (optional) and tokenSecretKey (optional), as
txloop.sidecar.
*/}}
{{- define "txloop.sidecarVolumes" -}}
{{- $root := required "txloop.sidecarVolumes: give the chart's context as \"root\"" .root -}}
{{- $configMap := required "txloop.sidecarVolumes: give the resources ConfigMap's name as \"resourcesConfigMap\"" .resourcesConfigMap -}}
- name: txloop-resources
  configMap:
    name: {{ $configMap }}
    items:
      - key: resources.yaml
        path: resources.yaml
{{- with .tokenSecret }}
- name: txloop-token
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ default "token" $.tokenSecretKey }}
        path: {{ default "token" $.tokenSecretKey }}
{{- end }}
{{- include "txloop.etcdVolumes" $root }}
{{- end -}}
