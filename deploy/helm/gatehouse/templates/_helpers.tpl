{{- define "gatehouse.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "gatehouse.secretName" -}}
{{- if .Values.secret.create -}}{{ include "gatehouse.fullname" . }}{{- else -}}{{ .Values.secret.existingSecret }}{{- end -}}
{{- end -}}
