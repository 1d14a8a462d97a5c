#!/bin/sh
# Builds the test peer into $1: static, stripped, stamped with the Kubernetes version of go.mod
# (what /version reports; unstamped, it would say v0.0.0-master). Uses $GO, else go on PATH.
set -eu
out=$(realpath -m "$1")
cd "$(dirname "$0")"
version=$(sed -n 's/^[[:space:]]*k8s\.io\/kubernetes \(v[0-9][^[:space:]]*\)$/\1/p' go.mod)
[ -n "$version" ] || { echo "build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
major=$(echo "${version#v}" | cut -d. -f1)
minor=$(echo "${version#v}" | cut -d. -f2)
v=k8s.io/component-base/version
CGO_ENABLED=0 "${GO:-go}" build -buildvcs=false -trimpath \
  -ldflags="-s -w -X $v.gitVersion=$version -X $v.gitMajor=$major -X $v.gitMinor=$minor -X $v.gitTreeState=clean" \
  -o "$out" .
