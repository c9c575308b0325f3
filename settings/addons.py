"""Add-ons: Helm charts and plain manifests the cluster runs, installed by k3s from the servers' manifests (or by
Pulumi through pulumi-kubernetes, with kubernetes.manage)."""

from __future__ import annotations

import itertools
import re
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, Field, model_validator

from settings.model_base import Model
from settings.types import HttpUrl, dns_label

# Keys whose values are credentials: such a value must not sit in the public Ignition. A key is read as words
# (split at `-`, `_`, `.`, camelCase and digits), so that `bypass` or `compass` holds no `pass`. A key that only names
# where a credential is (existingSecret, secretName, tokenRef, tlsSecret: a Secret's name) is not one.
_CREDENTIAL_WORDS = frozenset(
    {"pass", "password", "passwd", "passphrase", "secret", "token", "credential", "apikey", "privatekey"}
)
_CREDENTIAL_PAIRS = frozenset({("api", "key"), ("private", "key")})
_REFERENCE_FIRST = frozenset({"existing"})
_REFERENCE_LAST = frozenset({"name", "ref", "namespace"})
# A word before `secret` that says which Kubernetes Secret it names: `--tls-secret`, `imagePullSecret`.
_SECRET_OBJECT_KINDS = frozenset({"tls", "ssl", "cert", "certificate", "ca", "pull"})
_SINGULARS = _CREDENTIAL_WORDS | _REFERENCE_LAST | {"key"}
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def _words(key: object) -> list[str]:
    """`key` as lower-case words, singular: `adminPasswords` -> admin, password; `DB_TOKEN` -> db, token."""
    words = [word.lower() for word in _WORD.findall(str(key))]
    return [word[:-1] if word.endswith("s") and word[:-1] in _SINGULARS else word for word in words]


def _credential_at(words: list[str], i: int) -> int:
    """How many words from `i` name a credential (`password`: 1, `api key`: 2), 0 if none."""
    if tuple(words[i : i + 2]) in _CREDENTIAL_PAIRS:
        return 2
    if words[i] in _CREDENTIAL_WORDS and not (words[i] == "secret" and i and words[i - 1] in _SECRET_OBJECT_KINDS):
        return 1
    return 0


def _is_reference(words: list[str]) -> bool:
    return bool(words) and (words[0] in _REFERENCE_FIRST or words[-1] in _REFERENCE_LAST)


def _k8s_name(value: str) -> str:
    return dns_label(value)


def _is_credential_key(key: object) -> bool:
    """A key with a word naming a credential anywhere in it: `adminPassword`, `DB_PASSWORD`, `auth.passwords`."""
    words = _words(key)
    return any(_credential_at(words, i) for i in range(len(words))) and not _is_reference(words)


def _holds_a_value(value: Any) -> bool:
    """A value set to something a credential could be: text or a number (not a flag), or a list holding one."""
    if isinstance(value, list):
        return any(_holds_a_value(item) for item in value)
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""


# Inside text: `--password=...`, `password: ...` (a line of a multi-line value), `token=...`, and a URL with a
# password in it (`https://user:...@host`).
_TEXT_SETTING = re.compile(
    r"(?<![\w.-])-{0,2}(?P<key>[\w.-]+)[\"']?[ \t]*(?:=|:(?!//))[ \t]*(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;]*)"
)
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)
_FLAG = re.compile(r"^-{1,2}(?P<key>[\w.-]+)$")
# Values that are no credential: empty, a flag's word, or a reference to one kept elsewhere ($(VAR) in a
# container's args, ${VAR} or $VAR in a script).
_NOT_A_CREDENTIAL = re.compile(
    r"^(|true|false|yes|no|on|off|null|~|\[\]|\{\}|\$\(\w+\)|\$\{\w+\}|\$\w+)$", re.IGNORECASE
)


def _is_credential_text(key: str, value: str) -> bool:
    """In text, a key whose last word names a credential: `--token-ttl=5m` or `--password-file=...` sets none."""
    words = _words(key)
    ends_in_one = any(_credential_at(words, i) == len(words) - i for i in range(max(0, len(words) - 2), len(words)))
    return ends_in_one and not _is_reference(words) and not _NOT_A_CREDENTIAL.match(value.strip("\"'"))


def _text_holds_a_credential(text: str) -> bool:
    """Whether text (a flag, a line of a script or config file, a URL) sets a credential-looking key to a value."""
    if _URL_PASSWORD.search(text):
        return True
    return any(_is_credential_text(m["key"], m["value"]) for m in _TEXT_SETTING.finditer(text))


def _flag_then_value(items: list[Any]) -> list[int]:
    """Indexes of list items that are the value of the credential-looking flag before them: ['--token', '...']."""
    return [
        i + 1
        for i, (flag, value) in enumerate(itertools.pairwise(items))
        if isinstance(flag, str)
        and isinstance(value, str)
        and (match := _FLAG.match(flag)) is not None
        and not value.startswith("-")
        and _is_credential_text(match["key"], value)
    ]


def secret_looking(values: Any, path: str = "") -> list[str]:
    """Dotted paths in `values` that look like a credential with its value set: under a credential-looking key, the
    `value` of a `{name: <credential-looking>, value: ...}` pair (a container's environment variable), text that
    sets one (`--password=...`, a `password: ...` line of a multi-line value), or the word after a credential-looking
    flag in a list (`['--token', '...']`)."""
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
        after_flag = _flag_then_value(values)
        for i, value in enumerate(values):
            found += [f"{path}[{i}]"] if i in after_flag else secret_looking(value, f"{path}[{i}]")
    elif isinstance(values, str) and _text_holds_a_credential(values):
        found.append(path)
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
