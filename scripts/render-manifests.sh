#!/usr/bin/env bash
# Renders the Helm chart's default install into deploy/manifests, for
# people without Helm: kubectl apply -f deploy/manifests/deploywatch.yaml
# (into the namespace deploywatch, watching the namespace default; edit
# the ConfigMap and the Role's namespace to taste). TestChart checks it is
# up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
helm=${DEPLOYWATCH_HELM:-$(./scripts/tools.sh helm)}
{
	echo "# Rendered from deploy/helm/deploywatch by scripts/render-manifests.sh: do not edit."
	"$helm" template deploywatch deploy/helm/deploywatch --namespace deploywatch
} > deploy/manifests/deploywatch.yaml
echo "wrote deploy/manifests/deploywatch.yaml"
