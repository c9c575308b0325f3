"""Add-ons: Helm charts and plain manifests the cluster runs, installed by k3s from the servers' manifests (or by
Pulumi through pulumi-kubernetes, with kubernetes.manage)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, model_validator

from settings.model_base import Model
from settings.types import HttpUrl, dns_label

# Keys whose values are credentials: such a value must not sit in the public Ignition. A key that only names where
# a credential is (existingSecret, secretName, tokenRef) is not one.
_SECRET_KEY = re.compile(r"(pass(word|wd)?|secret|token|api[-_]?key|private[-_]?key|credential)", re.IGNORECASE)
_REFERENCE_KEY = re.compile(r"^existing|(Name|Ref)$")


def _k8s_name(value: str) -> str:
    return dns_label(value)


def _is_credential_key(key: object) -> bool:
    return bool(_SECRET_KEY.search(str(key))) and not _REFERENCE_KEY.search(str(key))


def _holds_a_value(value: Any) -> bool:
    """A value set to something a credential could be: text or a number (not a flag), or a list holding one."""
    if isinstance(value, list):
        return any(_holds_a_value(item) for item in value)
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


def secret_looking(values: Any, path: str = "") -> list[str]:
    """Dotted paths in `values` that look like a credential with its value set: under a credential-looking key, or
    the `value` of a `{name: <credential-looking>, value: ...}` pair (a container's environment variable)."""
    found = []
    if isinstance(values, dict):
        if _is_credential_key(values.get("name", "")) and _holds_a_value(values.get("value")):
            found.append(f"{path}.value" if path else "value")
        for key, value in values.items():
            where = f"{path}.{key}" if path else str(key)
            if _is_credential_key(key) and _holds_a_value(value):
                found.append(where)
            else:
                found += secret_looking(value, where)
    elif isinstance(values, list):
        for i, value in enumerate(values):
            found += secret_looking(value, f"{path}[{i}]")
    return found


def _holds_a_secret(document: Any) -> bool:
    """A Kubernetes object that is a Secret, or a List with one among its items."""
    if not isinstance(document, dict):
        return False
    items = document.get("items")
    return document.get("kind") == "Secret" or (
        isinstance(items, list) and any(_holds_a_secret(item) for item in items)
    )


def _public_values(values: dict[str, Any]) -> dict[str, Any]:
    secrets = secret_looking(values)
    if secrets:
        raise ValueError(
            f"values.{secrets[0]} looks like a credential, and values are public (they go into the servers' public "
            "Ignition): move it to the secret addonValues, e.g. pulumi config set --secret --path "
            "'addonValues.<chart name>' '<YAML with the secret values>'"
        )
    return values


def _manifest(content: str) -> str:
    try:
        documents = [d for d in yaml.safe_load_all(content) if d is not None]
    except yaml.YAMLError as error:
        raise ValueError(f"is not YAML: {error}") from None
    if not documents:
        raise ValueError("holds no object: give one or more Kubernetes objects as YAML")
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= document.keys():
            raise ValueError("every document must be a Kubernetes object with apiVersion, kind and metadata")
        if _holds_a_secret(document):
            raise ValueError("holds a Secret, and manifests are public: give a chart's secret values in addonValues")
        credentials = secret_looking(document)
        if credentials:
            raise ValueError(
                f"{credentials[0]} looks like a credential, and manifests are public (they go into the servers' "
                "public Ignition): give it through a chart's secret values in addonValues"
            )
    return content


K8sName = Annotated[str, AfterValidator(_k8s_name)]


class HelmChart(Model):
    """A Helm chart, pinned to a version."""

    name: K8sName = Field(description="the release's name, a DNS label")
    repo: HttpUrl = Field(description="the chart repository's URL")
    chart: str = Field(min_length=1, description="the chart's name in the repository")
    version: str = Field(min_length=1, description="the chart's version, pinned")
    namespace: K8sName = Field(default="default", description="the namespace it is installed in (made if missing)")
    values: Annotated[dict[str, Any], AfterValidator(_public_values)] = Field(
        default_factory=dict, description="the chart's values (public); secret ones go in the secret addonValues"
    )


class Manifest(Model):
    """Kubernetes objects, as YAML."""

    name: K8sName = Field(description="a name for this set of objects, a DNS label")
    content: Annotated[str, AfterValidator(_manifest)] = Field(description="one or more objects, as YAML (public)")


class Addons(Model):
    """What the cluster runs besides k3s's own components."""

    charts: tuple[HelmChart, ...] = Field(default=(), description="Helm charts")
    manifests: tuple[Manifest, ...] = Field(default=(), description="plain Kubernetes objects")

    @model_validator(mode="after")
    def _unique(self) -> Addons:
        names = [c.name for c in self.charts] + [m.name for m in self.manifests]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} names more than one add-on: give each its own name")
        return self


class Kubernetes(Model):
    """How Pulumi itself works with the cluster once its API answers."""

    manage: bool = Field(
        default=False,
        description="true: Pulumi applies the add-ons through pulumi-kubernetes with the generated kubeconfig "
        "(needs the Kubernetes provider plugin), instead of k3s from the servers' manifests",
    )
