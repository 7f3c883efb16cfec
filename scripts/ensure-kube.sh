#!/usr/bin/env bash
# Builds the real kube-apiserver and helm the Kubernetes tests run, from Go modules (the module
# proxy only: nothing else is downloaded), once per version: the binaries and a stamp stay in
# ${TXLOOP_KUBE_CACHE:-$HOME/.cache/txloop/kube}, outside the checkout, so a clean clone (CI) finds
# them built. Measured on 2 cores with the Go modules already downloaded and an empty build cache:
# both in 4 min 45 s wall (9 CPU-minutes); with them built, 0.0 s.
# Prints the cache's bin directory on stdout.
set -euo pipefail
KUBE_VERSION="${TXLOOP_KUBE_VERSION:-v1.34.4}"
HELM_VERSION="${TXLOOP_HELM_VERSION:-v3.21.4}"
CACHE="${TXLOOP_KUBE_CACHE:-$HOME/.cache/txloop/kube}"
OUT="$CACHE/bin"
mkdir -p "$OUT"
command -v kubectl >/dev/null || { echo "txloop: the Kubernetes tests need kubectl on PATH (https://kubernetes.io/docs/tasks/tools/)" >&2; exit 1; }
command -v go >/dev/null || { echo "txloop: the Kubernetes tests need Go (apt-get install golang-go, or https://go.dev/dl)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0
IFS=. read -r major minor patch <<<"${KUBE_VERSION#v}"

if [ "$(cat "$OUT/kube-apiserver.stamp" 2>/dev/null)" != "$KUBE_VERSION" ] || [ ! -x "$OUT/kube-apiserver" ]; then
  echo "txloop: building kube-apiserver $KUBE_VERSION into $OUT (once; about 5 minutes on 2 cores)" >&2
  staging="v0.${minor}.${patch}"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    printf 'module local/kubebuild\n\ngo 1.24.0\n' > go.mod
    gomod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\([^"]*\)".*/\1/p')"
    go mod edit -go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")"
    # k8s.io/kubernetes replaces its staging modules with ./staging/src/…: use their published versions.
    while read -r line; do
      set -- $line
      if [[ "$2" == "=>" ]]; then old="$1"; new="$3"; newv="${4:-}"; else old="$1@$2"; new="$4"; newv="${5:-}"; fi
      case "$new" in
        ./staging/src/*) go mod edit -replace="${old}=${old%@*}@${staging}" ;;
        ./*|../*) echo "txloop: unexpected local replace in k8s.io/kubernetes: $line" >&2; exit 1 ;;
        *) go mod edit -replace="${old}=${new}${newv:+@$newv}" ;;
      esac
    done < <(awk '/^replace[ \t]*\(/{b=1;next} b&&/^\)/{b=0;next} b{print;next} /^replace[ \t]/{sub(/^replace[ \t]+/,"");print}' "$gomod" | sed 's#//.*##' | awk 'NF')
    go get "k8s.io/kubernetes/cmd/kube-apiserver@${KUBE_VERSION}" >&2
    ld="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=${KUBE_VERSION} -X $p.gitMajor=${major} -X $p.gitMinor=${minor} -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    go build -mod=mod -trimpath -ldflags "$ld" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "$OUT/kube-apiserver.tmp" "$OUT/kube-apiserver"
  echo "$KUBE_VERSION" > "$OUT/kube-apiserver.stamp"
fi

if [ "$(cat "$OUT/helm.stamp" 2>/dev/null)" != "$HELM_VERSION" ] || [ ! -x "$OUT/helm" ]; then
  echo "txloop: building helm $HELM_VERSION into $OUT (once; about 3 minutes)" >&2
  GOBIN="$OUT" go install -trimpath -ldflags "-s -w \
    -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${major} -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${minor} \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${major} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${minor}" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
  echo "$HELM_VERSION" > "$OUT/helm.stamp"
fi
echo "$OUT"
