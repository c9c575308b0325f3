"""KubernetesAddons: the add-ons applied by Pulumi itself, through pulumi-kubernetes and the generated admin
kubeconfig, for a stack with kubernetes.manage: Pulumi then owns them (diffs, updates, deletes) once the cluster's
API answers. Without kubernetes.manage, k3s installs them from the servers' manifests and this module is never
imported, so a stack needs no Kubernetes provider plugin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from settings.credentials import Credentials
from settings.model import Settings

NAMESPACES_THAT_EXIST = ("default", "kube-system")


@dataclass(frozen=True)
class KubernetesAddonsArgs:
    settings: Settings
    credentials: Credentials
    kubeconfig: pulumi.Output[str]


def _merged(public: dict[str, Any], secret: dict[str, Any]) -> dict[str, Any]:
    """The chart's values with its secret ones laid over them, key by key."""
    merged = dict(public)
    for key, value in secret.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


class KubernetesAddons(pulumi.ComponentResource):
    """A Kubernetes provider for the cluster; each chart as a helm.v4.Chart, each manifest as a yaml.v2.ConfigGroup."""

    def __init__(self, name: str, args: KubernetesAddonsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ephemeros:index:KubernetesAddons", name, None, opts)
        settings, secrets = args.settings, args.credentials.addon_values
        provider = k8s.Provider(f"{name}-cluster", kubeconfig=args.kubeconfig, opts=pulumi.ResourceOptions(parent=self))
        on_cluster = pulumi.ResourceOptions(parent=self, provider=provider)
        namespaces: dict[str, k8s.core.v1.Namespace] = {}
        self.resources: list[pulumi.Resource] = [provider]
        for chart in settings.addons.charts:
            depends: list[pulumi.Resource] = []
            if chart.namespace not in NAMESPACES_THAT_EXIST:
                if chart.namespace not in namespaces:
                    namespaces[chart.namespace] = k8s.core.v1.Namespace(
                        f"{name}-namespace-{chart.namespace}",
                        metadata={"name": chart.namespace},
                        opts=on_cluster,
                    )
                depends.append(namespaces[chart.namespace])
            values = _merged(chart.values, yaml.safe_load(secrets.get(chart.name) or "{}") or {})
            chart_release = k8s.helm.v4.Chart(
                f"{name}-{chart.name}",
                chart=chart.chart,
                version=chart.version,
                namespace=chart.namespace,
                repository_opts=k8s.helm.v4.RepositoryOptsArgs(repo=chart.repo),
                values=pulumi.Output.secret(values) if chart.name in secrets else values,
                opts=pulumi.ResourceOptions.merge(on_cluster, pulumi.ResourceOptions(depends_on=depends)),
            )
            self.resources += [*depends, chart_release]
        for manifest in settings.addons.manifests:
            self.resources.append(
                k8s.yaml.v2.ConfigGroup(f"{name}-{manifest.name}", yaml=manifest.content, opts=on_cluster)
            )
        self.register_outputs({})
