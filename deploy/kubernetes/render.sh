#!/usr/bin/env bash
# Kubernetes manifests for tunerflow, offline.
#   render.sh export DIR      jina export of flows/train.yml into DIR (replaced); committed as export/
#   render.sh manifests OUT   the kustomize overlay (export/ + patches) rendered into one file
# `make k8s` runs both: export into deploy/kubernetes/export, manifests into build/k8s.yaml.
# JINA (default .venv/bin/jina) and KUBECTL (default $TUNERFLOW_K8S_VENV/bin/kubectl, the venv
# defaulting to .venv-k8s) may point elsewhere; relative paths are taken from the project root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
namespace=tunerflow
# The gateway runs in the encoder image (it has jina); naming it keeps the export off the network.
gateway_image=tunerflow-encoder:0.1.0

absolute() { case $1 in /*) echo "$1" ;; *) echo "$root/$1" ;; esac; }

case ${1:-} in
  export)
    dir=$(absolute "${2:?usage: render.sh export DIR}")
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    # A clean environment: jina copies JINA_* variables it sees into the generated ConfigMaps. PYTHONPATH:
    # this checkout's tunerflow (the gateway class is imported to export it).
    env -i PATH="$PATH" HOME="$tmp" PYTHONPATH="$root/src" JINA_GATEWAY_IMAGE="$gateway_image" JINA_OPTOUT_TELEMETRY=1 PYTHONWARNINGS=ignore \
      "$(absolute "${JINA:-.venv/bin/jina}")" export kubernetes "$here/flows/train.yml" "$tmp/export" \
      --k8s-namespace "$namespace" >/dev/null
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    mv "$tmp/export" "$dir"
    ;;
  manifests)
    out=$(absolute "${2:?usage: render.sh manifests OUT}")
    kubectl=$(absolute "${KUBECTL:-${TUNERFLOW_K8S_VENV:-.venv-k8s}/bin/kubectl}")
    mkdir -p "$(dirname "$out")"
    "$kubectl" kustomize "$here" >"$out.tmp"
    mv "$out.tmp" "$out"
    ;;
  *)
    sed -n '2,6p' "$0" >&2
    exit 2
    ;;
esac
