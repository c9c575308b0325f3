"""Stack settings: good configs load, and every bad one fails naming its key, what is wrong and what to do."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pytest

from harness.stack import SECRET_VALUES, base_settings, edited, full_settings, secret_keys, stack_settings, to_raw
from settings import LoadedSettings, SettingsError, load_settings
from settings.addons import secret_looking
from settings.dns_plan import datastore_record
from settings.rules import PLACEHOLDER_SSH_KEY

Doc = dict[str, Any]
VULTR_SOURCE = "203.0.113.7/32"
SECRET_MANIFEST = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"
CHART = {"name": "db", "repo": "https://charts.example.com", "chart": "postgresql", "version": "1.2.3"}


def load(doc: Doc, secret: Collection[str] = ()) -> LoadedSettings:
    return load_settings(to_raw(doc), secret_keys(set(secret)))


def node(doc: Doc, i: int) -> dict[str, Any]:
    node_doc: dict[str, Any] = doc["nodes"][i]
    return node_doc


def setting(key: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        doc[key] = value

    return apply


def node_setting(i: int, key: str, value: Any) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        node(doc, i)[key] = value

    return apply


def remove(key: str) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        del doc[key]

    return apply


def all_of(*edits: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        for edit in edits:
            edit(doc)

    return apply


def all_agents(doc: Doc) -> None:
    for entry in doc["nodes"]:
        entry["role"] = "agent"


def make_servers(count: int, datastore: str) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        doc["nodes"] = [{"hostname": f"s{i}", "role": "server"} for i in range(count)]
        doc["datastore"] = {"type": datastore}

    return apply


# (case id, edit of a valid stack, keys set as secrets, the key the message must name, a hint it must give)
BAD_CONFIGS: list[tuple[str, Callable[[Doc], None], set[str], str, str]] = [
    (
        "duplicate-hostnames",
        node_setting(1, "hostname", "node0"),
        set(),
        "ephemeros:nodes",
        "hostname node0 is used by more than one",
    ),
    (
        "agent-only",
        all_agents,
        set(),
        "ephemeros:nodes",
        "make at least one a server",
    ),
    (
        "two-servers-sqlite",
        node_setting(1, "role", "server"),
        set(),
        "ephemeros:datastore.type",
        "use etcd (3, 5, ... servers) or postgres",
    ),
    (
        "two-servers-etcd",
        make_servers(2, "etcd"),
        set(),
        "ephemeros:datastore.type",
        "odd number of servers, at least 3",
    ),
    ("four-servers-etcd", make_servers(4, "etcd"), set(), "ephemeros:datastore.type", "odd number of servers"),
    (
        "k3s-channel-not-version",
        setting("k3s", {"version": "stable", "sha256": "0" * 64}),
        set(),
        "ephemeros:k3s.version",
        "e.g. v1.36.4+k3s1",
    ),
    (
        "k3s-version-without-k3s-suffix",
        setting("k3s", {"version": "v1.36.4", "sha256": "0" * 64}),
        set(),
        "ephemeros:k3s.version",
        "pin one exactly",
    ),
    (
        "k3s-bad-sha256",
        setting("k3s", {"version": "v1.36.4+k3s1", "sha256": "abc123"}),
        set(),
        "ephemeros:k3s.sha256",
        "sha256sum-amd64.txt",
    ),
    ("k3s-missing-sha256", setting("k3s", {"version": "v1.36.4+k3s1"}), set(), "ephemeros:k3s.sha256", "is required"),
    (
        "flatcar-bad-version",
        setting("flatcar", {"version": "stable"}),
        set(),
        "ephemeros:flatcar.version",
        "or write 'current'",
    ),
    (
        "bad-mac",
        node_setting(1, "mac", "52:54:00:zz:00:01"),
        set(),
        "ephemeros:nodes[1].mac (node node1)",
        "six hex pairs",
    ),
    ("multicast-mac", node_setting(1, "mac", "01:00:5e:00:00:01"), set(), "ephemeros:nodes[1].mac", "multicast"),
    (
        "duplicate-mac",
        node_setting(1, "mac", "52:54:00:aa:00:00"),
        set(),
        "ephemeros:nodes",
        "MAC 52:54:00:aa:00:00 is given to more than one node",
    ),
    ("unknown-top-level-key", setting("sshkeys", ["x"]), set(), "ephemeros:sshkeys", "did you mean ephemeros:sshKeys"),
    (
        "unknown-nested-key",
        setting("k3s", {"versoin": "v1.36.4+k3s1", "version": "v1.36.4+k3s1", "sha256": "0" * 64}),
        set(),
        "ephemeros:k3s.versoin",
        "did you mean version",
    ),
    (
        "unknown-node-key",
        node_setting(2, "ip", "10.0.0.2/24"),
        set(),
        "ephemeros:nodes[2].ip (node node2)",
        "known settings: address",
    ),
    ("bad-role", node_setting(2, "role", "worker"), set(), "ephemeros:nodes[2].role", "'server' or 'agent'"),
    (
        "bad-hostname",
        node_setting(2, "hostname", "node_2.lab"),
        set(),
        "ephemeros:nodes[2].hostname",
        "lowercase letters, digits and hyphens",
    ),
    ("missing-cluster-name", remove("clusterName"), set(), "ephemeros:clusterName", "is required"),
    (
        "ignition-url-not-http",
        setting("ignitionBaseUrl", "ftp://files.lab/ign"),
        set(),
        "ephemeros:ignitionBaseUrl",
        "http(s) URL",
    ),
    (
        "postgres-without-endpoint",
        setting("datastore", {"type": "postgres"}),
        set(),
        "ephemeros:datastoreEndpoint",
        "pulumi config set --secret datastoreEndpoint",
    ),
    (
        "credential-in-plain-text",
        all_of(
            setting("datastore", {"type": "postgres"}), setting("datastoreEndpoint", SECRET_VALUES["datastoreEndpoint"])
        ),
        set(),
        "ephemeros:datastoreEndpoint",
        "pulumi config set --secret datastoreEndpoint",
    ),
    (
        "endpoint-not-postgres",
        all_of(setting("datastore", {"type": "postgres"}), setting("datastoreEndpoint", "mysql://u:Secret-X@db/k3s")),
        {"datastoreEndpoint"},
        "ephemeros:datastoreEndpoint",
        "postgres://user:password@host",
    ),
    (
        "endpoint-without-postgres",
        setting("datastoreEndpoint", SECRET_VALUES["datastoreEndpoint"]),
        {"datastoreEndpoint"},
        "ephemeros:datastoreEndpoint",
        "set datastore.type to postgres",
    ),
    (
        "gateway-without-address",
        node_setting(0, "gateway", "192.168.1.1"),
        set(),
        "ephemeros:nodes[0] (node node0)",
        "need a static address",
    ),
    (
        "gateway-outside-network",
        all_of(node_setting(0, "address", "192.168.1.10/24"), node_setting(0, "gateway", "10.0.0.1")),
        set(),
        "ephemeros:nodes[0] (node node0)",
        "is outside 192.168.1.0/24",
    ),
    (
        "address-in-pod-network",
        node_setting(0, "address", "10.42.0.7/16"),
        set(),
        "ephemeros:nodes[0] (node node0).address",
        "lies in k3s.clusterCidr",
    ),
    (
        "overlapping-k3s-networks",
        setting("k3s", {"version": "v1.36.4+k3s1", "sha256": "0" * 64, "serviceCidr": "10.42.128.0/17"}),
        set(),
        "ephemeros:k3s",
        "give them disjoint ranges",
    ),
    (
        "bad-taint-effect",
        node_setting(1, "taints", ["gpu=true:NoWay"]),
        set(),
        "ephemeros:nodes[1].taints[0]",
        "Effect one of NoSchedule",
    ),
    (
        "restricted-label",
        node_setting(1, "labels", {"node-role.kubernetes.io/worker": "true"}),
        set(),
        "ephemeros:nodes[1].labels",
        "use your own prefix",
    ),
    ("no-ssh-keys", setting("sshKeys", []), set(), "ephemeros:sshKeys", "needs at least one entry"),
    (
        "private-key-as-ssh-key",
        setting("sshKeys", ["-----BEGIN OPENSSH PRIVATE KEY-----"]),
        set(),
        "ephemeros:sshKeys[0]",
        "give the public key",
    ),
    (
        "damaged-ssh-key",
        setting("sshKeys", ["ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQAB user@host"]),
        set(),
        "ephemeros:sshKeys[0]",
        "damaged or truncated",
    ),
    (
        "healthchecks-without-key",
        setting("heartbeat", {"provider": "healthchecks"}),
        set(),
        "ephemeros:healthchecksApiKey",
        "pulumi config set --secret healthchecksApiKey",
    ),
    (
        "heartbeat-url-missing-for-node",
        all_of(setting("heartbeat", {"provider": "urls"}), setting("heartbeatUrls", {"node0": "https://hc.test/a"})),
        {"heartbeatUrls"},
        "ephemeros:heartbeatUrls",
        "no ping URL for node1, node2",
    ),
    (
        "heartbeat-period-too-short",
        setting("heartbeat", {"provider": "urls", "period": 10}),
        set(),
        "ephemeros:heartbeat.period",
        "greater than or equal to 60",
    ),
    (
        "reserved-kernel-arg",
        node_setting(1, "kernelArgs", ["ignition.config.url=http://evil/x.ign"]),
        set(),
        "ephemeros:nodes[1] (node node1).kernelArgs",
        "set by ephemeros itself",
    ),
    (
        "rfc2136-without-tsig-secret",
        setting("dns", {"rfc2136": {"server": "10.0.0.53", "zone": "lab.test", "keyName": "k"}}),
        set(),
        "ephemeros:dnsTsigSecret",
        "pulumi config set --secret dnsTsigSecret",
    ),
    (
        "rotate-unknown-node",
        setting("rotate", {"nodePasswords": {"node9": 1}}),
        set(),
        "ephemeros:rotate.nodePasswords.node9",
        "is not a node",
    ),
    (
        "addon-value-that-is-a-credential",
        setting("addons", {"charts": [dict(CHART, values={"auth": {"adminPassword": "hunter2"}})]}),
        set(),
        "ephemeros:addons.charts[0].values",
        "values.auth.adminPassword looks like a credential",
    ),
    (
        "addon-manifest-with-a-secret",
        setting(
            "addons",
            {"manifests": [{"name": "creds", "content": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n"}]},
        ),
        set(),
        "ephemeros:addons.manifests[0].content",
        "holds a Secret",
    ),
    (
        "addon-credentials-in-a-list",
        setting("addons", {"charts": [dict(CHART, values={"auth": {"passwords": ["one", "two"]}})]}),
        set(),
        "ephemeros:addons.charts[0].values",
        "values.auth.passwords looks like a credential",
    ),
    (
        "addon-credential-in-an-environment-variable",
        setting(
            "addons",
            {"charts": [dict(CHART, values={"extraEnv": [{"name": "DB_PASSWORD", "value": "hunter2"}]})]},
        ),
        set(),
        "ephemeros:addons.charts[0].values",
        "values.extraEnv[0].value looks like a credential",
    ),
    (
        "addon-manifest-with-a-secret-in-a-list",
        setting(
            "addons",
            {
                "manifests": [
                    {
                        "name": "creds",
                        "content": "apiVersion: v1\nkind: List\nmetadata: {}\nitems:\n- apiVersion: v1\n"
                        "  kind: Secret\n  metadata:\n    name: x\n",
                    }
                ]
            },
        ),
        set(),
        "ephemeros:addons.manifests[0].content",
        "holds a Secret",
    ),
    (
        "addon-manifest-with-a-credential-in-a-configmap",
        setting(
            "addons",
            {
                "manifests": [
                    {
                        "name": "app",
                        "content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n"
                        "data:\n  password: hunter2\n",
                    }
                ]
            },
        ),
        set(),
        "ephemeros:addons.manifests[0].content",
        "data.password looks like a credential, and manifests are public",
    ),
    (
        "addon-values-nested-instead-of-yaml-text",
        setting("addonValues", {"web": {"auth": {"password": "hunter2"}}}),
        {"addonValues"},
        "ephemeros:addonValues",
        "must be a map of a chart's name (addons.charts[].name) to the YAML text",
    ),
    (
        "addon-values-for-no-chart",
        setting("addonValues", {"nope": "a: 1"}),
        {"addonValues"},
        "ephemeros:addonValues.nope",
        "is not a chart in addons.charts",
    ),
    (
        "kube-vip-without-a-vip",
        setting("kubeVip", {"interface": "eno1"}),
        set(),
        "ephemeros:apiServerAddress",
        "apiServerAddress must be it",
    ),
    (
        "kube-vip-on-a-nodes-address",
        all_of(
            setting("kubeVip", {"interface": "eno1"}),
            setting("apiServerAddress", "192.168.1.10"),
            node_setting(0, "address", "192.168.1.10/24"),
        ),
        set(),
        "ephemeros:apiServerAddress",
        "is node node0's own address",
    ),
    (
        "kube-vip-outside-the-servers-network",
        all_of(
            setting("kubeVip", {"interface": "eno1"}),
            setting("apiServerAddress", "192.168.2.250"),
            node_setting(0, "address", "192.168.1.10/24"),
        ),
        set(),
        "ephemeros:apiServerAddress",
        "is outside server node0's network 192.168.1.0/24",
    ),
    (
        "kube-vip-image-with-a-comment",
        all_of(
            setting("kubeVip", {"interface": "eno1", "image": "ghcr.io/kube-vip/kube-vip:v0.9.2 # pinned"}),
            setting("apiServerAddress", "192.168.1.250"),
        ),
        set(),
        "ephemeros:kubeVip.image",
        "is not an image reference: write registry/repository[:tag][@sha256:<64 hex digits>]",
    ),
    (
        "kured-image-with-a-colon-space",
        setting("updates", {"kured": {"image": "ghcr.io/kubereboot/kured: 1.20.0"}}),
        set(),
        "ephemeros:updates.kured.image",
        "is not an image reference",
    ),
    (
        "kured-image-without-a-registry",
        setting("updates", {"kured": {"image": "kubereboot/kured:1.20.0"}}),
        set(),
        "ephemeros:updates.kured.image",
        "names no registry: write it out, e.g. docker.io/kubereboot/kured:1.20.0",
    ),
    (
        "kube-vip-without-an-interface",
        all_of(setting("kubeVip", {}), setting("apiServerAddress", "192.168.1.250")),
        set(),
        "ephemeros:kubeVip",
        "interface is required",
    ),
    (
        "vultr-without-its-settings",
        setting("datastore", {"type": "vultr"}),
        set(),
        "ephemeros:datastore",
        "type vultr needs datastore.vultr with at least region and allowedSources",
    ),
    (
        "vultr-open-to-the-internet",
        setting("datastore", {"type": "vultr", "vultr": {"region": "ams", "allowedSources": ["0.0.0.0/0"]}}),
        set(),
        "ephemeros:datastore.vultr.allowedSources",
        "would open PostgreSQL to the whole internet",
    ),
    (
        "vultr-ssh-open-to-the-internet",
        setting(
            "datastore",
            {
                "type": "vultr",
                "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE], "adminSources": ["0.0.0.0/0"]},
            },
        ),
        set(),
        "ephemeros:datastore.vultr.adminSources",
        "would open SSH to the whole internet",
    ),
    (
        "vultr-bad-region",
        setting("datastore", {"type": "vultr", "vultr": {"region": "Amsterdam", "allowedSources": [VULTR_SOURCE]}}),
        set(),
        "ephemeros:datastore.vultr.region",
        "is not a Vultr region id",
    ),
    (
        "vultr-without-api-key",
        setting("datastore", {"type": "vultr", "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]}}),
        set(),
        "ephemeros:vultrApiKey",
        "pulumi config set --secret vultrApiKey",
    ),
    (
        "dumps-without-keys",
        all_of(
            setting(
                "datastore",
                {
                    "type": "vultr",
                    "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]},
                    "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps"},
                },
            ),
            setting("vultrApiKey", SECRET_VALUES["vultrApiKey"]),
        ),
        {"vultrApiKey"},
        "ephemeros:dumpsSecretAccessKey",
        "datastore.dumps needs it",
    ),
    (
        "dumps-check-name-too-long",
        all_of(
            setting("domain", f"{'a' * 40}.{'b' * 39}"),  # the nodes' names fit; the dumps' check's does not
            setting("heartbeat", {"provider": "healthchecks"}),
            setting("healthchecksApiKey", SECRET_VALUES["healthchecksApiKey"]),
            setting(
                "datastore",
                {
                    "type": "vultr",
                    "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]},
                    "dumps": {"endpoint": "https://s3.eu-central-003.backblazeb2.com", "bucket": "lab-dumps"},
                },
            ),
        ),
        {"healthchecksApiKey"},
        "ephemeros:datastore.dumps",
        "the dumps' check would be named",
    ),
    (
        "dumps-keep-nothing",
        setting(
            "datastore",
            {
                "type": "vultr",
                "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]},
                "dumps": {
                    "endpoint": "https://s3.eu-central-003.backblazeb2.com",
                    "bucket": "lab-dumps",
                    "keep": {"hourly": 0, "daily": 0, "weekly": 0},
                },
            },
        ),
        set(),
        "ephemeros:datastore.dumps.keep",
        "every schedule keeps 0 dumps, so no dump would ever be taken",
    ),
    (
        "healthchecks-key-for-the-urls-provider",
        all_of(
            setting("heartbeat", {"provider": "urls"}),
            setting("healthchecksApiKey", SECRET_VALUES["healthchecksApiKey"]),
        ),
        {"healthchecksApiKey"},
        "ephemeros:healthchecksApiKey",
        "only heartbeat.provider healthchecks uses it",
    ),
    (
        "datastore-named-like-a-node",
        all_of(
            setting("dns", {"rfc2136": {"server": "10.0.0.53", "zone": "lab.ephemeros.test", "keyName": "k"}}),
            setting("dnsTsigSecret", SECRET_VALUES["dnsTsigSecret"]),
            setting("vultrApiKey", SECRET_VALUES["vultrApiKey"]),
            setting(
                "datastore",
                {
                    "type": "vultr",
                    "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE], "dnsName": "node0.lab.ephemeros.test"},
                },
            ),
        ),
        {"dnsTsigSecret", "vultrApiKey"},
        "ephemeros:datastore.vultr.dnsName",
        "is already the name of a node or of the API server",
    ),
    (
        "vultr-settings-without-the-type",
        setting("datastore", {"vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]}}),
        set(),
        "ephemeros:datastore",
        "only read with type vultr",
    ),
    ("no-nodes", setting("nodes", []), set(), "ephemeros:nodes", "needs at least one entry"),
    (
        "bond-and-interfaces",
        all_of(node_setting(0, "bond", {"interfaces": ["eno1", "eno2"]}), node_setting(0, "interfaces", ["eno1"])),
        set(),
        "ephemeros:nodes[0] (node node0)",
        "bond.interfaces",
    ),
    (
        "duplicate-static-address",
        all_of(node_setting(0, "address", "192.168.1.10/24"), node_setting(1, "address", "192.168.1.10/24")),
        set(),
        "ephemeros:nodes",
        "address 192.168.1.10 is given to more than one node",
    ),
    (
        "log-target-not-host-port",
        setting("logExportTarget", "just-a-host-Secret-Y"),
        {"logExportTarget"},
        "ephemeros:logExportTarget",
        "host:port",
    ),
    (
        # The nodes' ncat matches the endpoint's certificate against DNS names only (ncat_ssl.c), never an address.
        "log-target-an-address",
        setting("logExportTarget", "203.0.113.5:6514"),
        {"logExportTarget"},
        "ephemeros:logExportTarget",
        "by its DNS name",
    ),
    ("nodes-not-a-list", setting("nodes", {"hostname": "node0"}), set(), "ephemeros:nodes", "should be a list"),
    (
        "check-tag-with-a-space",
        setting("heartbeat", {"provider": "urls", "tags": ["rack 2"]}),
        set(),
        "ephemeros:heartbeat.tags[0]",
        "one word without spaces",
    ),
    (
        "check-period-beyond-the-api",
        setting("heartbeat", {"provider": "urls", "period": 40000000}),
        set(),
        "ephemeros:heartbeat.period",
        "less than or equal to 31536000",
    ),
    (
        "check-name-too-long",
        all_of(
            setting("domain", ".".join(["d" * 30] * 3) + ".test"),
            setting("heartbeat", {"provider": "healthchecks"}),
            setting("healthchecksApiKey", SECRET_VALUES["healthchecksApiKey"]),
        ),
        {"healthchecksApiKey"},
        "ephemeros:nodes[0] (node node0).hostname",
        "healthchecks takes at most 100",
    ),
    (
        "api-server-is-an-agent",
        setting("apiServerAddress", "node1.lab.ephemeros.test"),
        set(),
        "ephemeros:apiServerAddress",
        "is the name of node node1, an agent",
    ),
    (
        "api-server-is-an-agents-host-name",
        setting("apiServerAddress", "node2"),
        set(),
        "ephemeros:apiServerAddress",
        "is the host name of node node2, an agent",
    ),
    (
        "api-server-bare-host-name",
        setting("apiServerAddress", "api"),
        set(),
        "ephemeros:apiServerAddress",
        "write it in full (e.g. api.lab.ephemeros.test)",
    ),
]


def test_the_table_has_at_least_25_distinct_bad_configs() -> None:
    assert len({case[0] for case in BAD_CONFIGS}) == len(BAD_CONFIGS) >= 25


@pytest.mark.parametrize(
    ("edit", "secret", "key", "hint"), [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS]
)
def test_bad_config_fails_naming_its_key(edit: Callable[[Doc], None], secret: set[str], key: str, hint: str) -> None:
    doc = edited(base_settings())
    edit(doc)
    with pytest.raises(SettingsError) as raised:
        load(doc, secret)
    matching = [p for p in raised.value.problems if p.startswith(key)]
    assert matching, f"no problem names {key!r}: {raised.value.problems}"
    assert any(hint in p for p in matching), f"no problem about {key!r} says {hint!r}: {matching}"


def test_all_problems_are_reported_at_once() -> None:
    doc = base_settings()
    node(doc, 1)["mac"] = "nope"
    node(doc, 2)["role"] = "boss"
    doc["typo"] = 1
    with pytest.raises(SettingsError) as raised:
        load(doc)
    assert len(raised.value.problems) == 3
    assert "3 problem(s)" in str(raised.value)


def test_a_bad_value_does_not_hide_a_problem_elsewhere() -> None:
    """The missing API key is reported although heartbeat.period, which sits next to the provider, is bad."""
    doc = base_settings()
    doc["heartbeat"] = {"provider": "healthchecks", "period": 10}
    node(doc, 2)["role"] = "boss"
    with pytest.raises(SettingsError) as raised:
        load(doc)
    problems = raised.value.problems
    assert any(p.startswith("ephemeros:heartbeat.period:") for p in problems)
    assert any(p.startswith("ephemeros:healthchecksApiKey:") for p in problems)
    assert any(p.startswith("ephemeros:nodes[2].role") for p in problems)
    assert not any(p.startswith("ephemeros:nodes:") for p in problems)  # nothing said twice about the bad role
    assert len(problems) == 3


def test_messages_never_repeat_a_credential() -> None:
    doc = base_settings()
    doc["datastore"] = {"type": "postgres"}
    doc["datastoreEndpoint"] = "mysql://k3s:Do-Not-Print-Me@db/k3s"
    doc["logExportTarget"] = "Do-Not-Print-Me-Either"
    doc["heartbeatUrls"] = {"node0": "ftp://Do-Not-Print-Me-3"}
    with pytest.raises(SettingsError) as raised:
        load(doc, {"datastoreEndpoint", "logExportTarget"})
    assert "Do-Not-Print" not in str(raised.value)
    assert len(raised.value.problems) >= 4  # bad endpoint, bad target, plain-text URLs, URLs without heartbeat


def test_a_valid_stack_loads_with_defaults() -> None:
    loaded = load(base_settings())
    settings = loaded.settings
    assert [n.hostname for n in settings.nodes] == ["node0", "node1", "node2"]
    assert settings.api_server == "node0.lab.ephemeros.test"
    assert settings.api_server_url == "https://node0.lab.ephemeros.test:6443"
    assert settings.k3s.binary_url == "https://github.com/k3s-io/k3s/releases/download/v1.36.4%2Bk3s1/k3s"
    assert settings.flatcar.release_url == "https://stable.release.flatcar-linux.net/amd64-usr/4593.2.5"
    assert settings.ignition_url(settings.nodes[1]) == "https://ignition.ephemeros.test/lab/node1.ign"
    assert settings.datastore.type == "sqlite"
    assert settings.heartbeat is None
    assert settings.dns is None
    assert any("sqlite" in w for w in loaded.warnings)


def test_pulumi_yaml_off_defaults_mean_off() -> None:
    doc = base_settings()
    doc |= {
        "heartbeat": {"enabled": False},
        "dns": {},
        "apiServerAddress": "",
        "datastoreEndpoint": "",
        "heartbeatUrls": {},
    }
    settings = load(doc).settings
    assert settings.heartbeat is None
    assert settings.dns is None
    assert settings.api_server == "node0.lab.ephemeros.test"


def test_values_are_normalized() -> None:
    doc = base_settings()
    node(doc, 1)["mac"] = "52-54-00-AA-00-0F"
    doc["ignitionBaseUrl"] = "https://ignition.ephemeros.test/lab/"
    doc["domain"] = "Lab.Ephemeros.Test."
    settings = load(doc).settings
    assert settings.nodes[1].mac == "52:54:00:aa:00:0f"
    assert settings.ignition_base_url == "https://ignition.ephemeros.test/lab"
    assert settings.domain == "lab.ephemeros.test"


def test_every_feature_together_loads() -> None:
    doc, secret = full_settings()
    loaded = load(doc, secret)
    assert loaded.credentials.datastore_endpoint == SECRET_VALUES["datastoreEndpoint"]
    assert "Pg-S3cret" not in repr(loaded.credentials)
    assert loaded.settings.heartbeat is not None
    assert loaded.settings.heartbeat.provider == "urls"


@pytest.mark.parametrize("servers", [3, 5])
def test_etcd_accepts_odd_server_counts(servers: int) -> None:
    doc = base_settings()
    make_servers(servers, "etcd")(doc)
    assert len(load(doc).settings.servers) == servers


def test_postgres_accepts_any_number_of_servers() -> None:
    doc = base_settings()
    make_servers(2, "postgres")(doc)
    doc["datastoreEndpoint"] = SECRET_VALUES["datastoreEndpoint"]
    assert len(load(doc, {"datastoreEndpoint"}).settings.servers) == 2


def test_values_that_only_name_a_credential_or_are_flags_are_public() -> None:
    values = {
        "auth": {"existingSecret": "db-auth", "secretName": "tls", "tokenRef": "t", "enabled": True},
        "serviceAccount": {"automountServiceAccountToken": False},
        "extraEnv": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {}}}],
        "password": "",
    }
    assert secret_looking(values) == []


def datastore_named(dns_name: str) -> LoadedSettings:
    doc = base_settings()
    doc["dns"] = {"rfc2136": {"server": "10.0.0.53", "zone": "lab.ephemeros.test", "keyName": "k"}}
    doc["dnsTsigSecret"] = SECRET_VALUES["dnsTsigSecret"]
    doc["vultrApiKey"] = SECRET_VALUES["vultrApiKey"]
    doc["datastore"] = {"type": "vultr", "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]}}
    doc["datastore"]["vultr"]["dnsName"] = dns_name
    return load(doc, {"dnsTsigSecret", "vultrApiKey"})


def test_the_datastores_name_gets_a_record_only_in_the_zone() -> None:
    inside = datastore_named("db.lab.ephemeros.test")
    assert datastore_record(inside.settings) == "db.lab.ephemeros.test"
    assert not any("dnsName" in w for w in inside.warnings)
    outside = datastore_named("db.elsewhere.test")
    assert datastore_record(outside.settings) is None
    assert any(w.startswith("datastore.vultr.dnsName db.elsewhere.test is not in zone") for w in outside.warnings)


def problems_of(doc: Doc, secret: Collection[str] = ()) -> list[str]:
    with pytest.raises(SettingsError) as raised:
        load(doc, secret)
    return raised.value.problems


@pytest.mark.parametrize(
    ("vip", "what"),
    [
        ("192.168.1.1", "gateway of 192.168.1.0/24"),
        ("192.168.1.0", "network address of 192.168.1.0/24"),
        ("192.168.1.255", "broadcast address of 192.168.1.0/24"),
    ],
)
def test_a_kube_vip_address_the_network_already_uses_is_refused(vip: str, what: str) -> None:
    doc = base_settings()
    doc["kubeVip"] = {"interface": "eno1"}
    doc["apiServerAddress"] = vip
    for i in (0, 1):  # a server and an agent on the same network: the problem is said once
        node(doc, i).update({"address": f"192.168.1.{10 + i}/24", "gateway": "192.168.1.1"})
    (problem,) = problems_of(doc)
    assert problem.startswith(f"ephemeros:apiServerAddress: {vip} is the {what} (the network of node0, node1)")
    assert "192.168.1.1 to 192.168.1.254" in problem
    doc["apiServerAddress"] = "192.168.1.250"
    load(doc)


@pytest.mark.parametrize(
    ("values", "where"),
    [
        ({"extraArgs": ["--v=2", "--password=hunter2"]}, "values.extraArgs[1]"),
        ({"args": ["--token", "abc123def"]}, "values.args[1]"),
        ({"config": "auth:\n  enabled: true\n  password: hunter2\n"}, "values.config"),
        ({"env": {"settings": "LOG=debug\nDB_PASSWORD=s3cret\n"}}, "values.env.settings"),
        ({"git": {"url": "https://bob:pa55word@git.example.com/repo.git"}}, "values.git.url"),
        ({"args": ["--oidc-client-secret", "abc123def"]}, "values.args[1]"),
        ({"config": "oidc:\n  clientSecret: abc123def\n"}, "values.config"),
        ({"extraEnv": [{"name": "HTTPPassword", "value": "hunter2"}]}, "values.extraEnv[0].value"),
    ],
)
def test_a_credential_inside_a_public_string_is_refused(values: dict[str, Any], where: str) -> None:
    doc = base_settings()
    doc["addons"] = {"charts": [dict(CHART, values=values)]}
    (problem,) = problems_of(doc)
    assert problem.startswith(f"ephemeros:addons.charts[0].values: {where} looks like a credential")


def test_a_credential_inside_a_manifests_string_is_refused() -> None:
    content = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n"
        "spec:\n  template:\n    spec:\n      containers:\n"
        "        - name: app\n          args: ['--listen=:80', '--api-key=0123456789abcdef']\n"
    )
    doc = base_settings()
    doc["addons"] = {"manifests": [{"name": "app", "content": content}]}
    (problem,) = problems_of(doc)
    assert problem.startswith("ephemeros:addons.manifests[0].content: spec.template.spec.containers[0].args[1] looks")


def test_strings_that_only_refer_to_a_credential_are_public() -> None:
    values = {
        "extraArgs": ["--password=$(DB_PASSWORD)", "--token-ttl=5m", "--password-file=/run/secrets/db"],
        "script": 'curl -H "token: ${TOKEN}" https://example.com:8443/path',
        "config": "existingSecret: db-auth\nsecretName: tls\npassword: ''\nauth: true\n",
        "args": ["--token", "$(TOKEN)", "--verbose"],
    }
    assert secret_looking(values) == []


def test_words_that_only_contain_a_credential_word_are_public() -> None:
    values = {
        "proxy": {"bypass": "all", "compass": "north", "passenger": 3},
        "env": "NO_PROXY=.lan\nbypass=all\n",
        "config": "compass: north\n",
        "extraArgs": ["--tls-secret", "ingress-tls", "--secret-name=ingress-tls", "--default-tls-secret=ns/tls"],
        "ingress": {"tlsSecret": "ingress-tls", "secret-name": "tls", "imagePullSecrets": ["regcred"]},
    }
    assert secret_looking(values) == []


def test_a_plain_http_chart_repository_is_warned_about() -> None:
    doc = base_settings()
    doc["addons"] = {"charts": [CHART, dict(CHART, name="mirror", repo="http://charts.lan")]}
    warnings = [w for w in load(doc).warnings if "charts" in w]
    assert warnings == [
        "addons.charts[1].repo (mirror) is plain http: anyone on the network path to the repository can change the "
        "chart that runs in the cluster; use https, or a repository on a trusted LAN"
    ]


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (node_setting(1, "hostname", "Node1"), "ephemeros:nodes[1].hostname (node Node1)"),
        (setting("clusterName", "Lab"), "ephemeros:clusterName"),
    ],
)
def test_a_name_with_capitals_is_refused_not_lowercased(edit: Callable[[Doc], None], key: str) -> None:
    doc = base_settings()
    edit(doc)
    (problem,) = problems_of(doc)
    assert problem.startswith(f"{key}: ")
    assert "has capital letters" in problem
    assert problem.endswith(f"write {problem.split(chr(39))[1].lower()!r}")


def test_the_dev_stacks_placeholder_ssh_key_is_warned_about() -> None:
    dev = stack_settings("dev")
    assert dev["sshKeys"][0].split()[:2] == PLACEHOLDER_SSH_KEY.split()
    (warning,) = [w for w in load(dev).warnings if w.startswith("sshKeys")]
    assert warning.startswith("sshKeys[0] is the dev stack's placeholder key, whose private half nobody has")
    dev["sshKeys"] = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKmqZfTM6XuO8Ck2nYDnOW5xZq5SA+gxtqUwYH0DlzcE me@laptop"]
    assert not any(w.startswith("sshKeys") for w in load(dev).warnings)


def test_a_datastore_name_in_no_managed_zone_is_warned_about() -> None:
    doc = base_settings()
    doc["vultrApiKey"] = SECRET_VALUES["vultrApiKey"]
    doc["datastore"] = {"type": "vultr", "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE]}}
    doc["datastore"]["vultr"]["dnsName"] = "db.lab.ephemeros.test"
    (warning,) = [w for w in load(doc, {"vultrApiKey"}).warnings if "dnsName" in w]
    assert warning.startswith(
        "datastore.vultr.dnsName db.lab.ephemeros.test is in no zone that pulumi up keeps (dns.rfc2136 is not set)"
    )


def vultr_stack(vultr: dict[str, Any], dumps: dict[str, Any] | None = None) -> LoadedSettings:
    doc = base_settings()
    doc["vultrApiKey"] = SECRET_VALUES["vultrApiKey"]
    doc["datastore"] = {"type": "vultr", "vultr": {"region": "ams", "allowedSources": [VULTR_SOURCE], **vultr}}
    secret = {"vultrApiKey"}
    if dumps is not None:
        doc["datastore"]["dumps"] = {"bucket": "lab-dumps", **dumps}
        doc["dumpsAccessKeyId"] = SECRET_VALUES["dumpsAccessKeyId"]
        doc["dumpsSecretAccessKey"] = SECRET_VALUES["dumpsSecretAccessKey"]
        secret |= {"dumpsAccessKeyId", "dumpsSecretAccessKey"}
    return load(doc, secret)


@pytest.mark.parametrize(
    "written",
    ["https://api.vultr.com", "https://api.vultr.com/", "https://api.vultr.com/v2", "https://api.vultr.com/v2/"],
)
def test_the_vultr_api_url_means_the_same_api_with_or_without_its_version_root(written: str) -> None:
    vultr = vultr_stack({"apiUrl": written}).settings.datastore.vultr
    assert vultr is not None
    assert vultr.api_url == "https://api.vultr.com"


def test_a_plain_http_dumps_endpoint_is_warned_about() -> None:
    plain = vultr_stack({}, {"endpoint": "http://s3.lab.example:9000"})
    (warning,) = [w for w in plain.warnings if w.startswith("datastore.dumps.endpoint")]
    assert "plain http" in warning
    assert "use https" in warning
    tls = vultr_stack({}, {"endpoint": "https://s3.eu-central-003.backblazeb2.com"})
    assert not any(w.startswith("datastore.dumps.endpoint") for w in tls.warnings)


def test_secret_values_too_large_for_a_stick_are_refused_at_preview() -> None:
    """A server's stick carries every chart's secret values: more than its secrets partition holds fails at
    preview, naming the setting, rather than at `pulumi up` while building the sticks."""
    doc = base_settings()
    doc["addons"] = {"charts": [CHART]}
    doc["addonValues"] = {"db": "auth:\n  password: " + "x" * (3 * 1024 * 1024) + "\n"}
    (problem,) = problems_of(doc, {"addonValues"})
    assert problem.startswith("ephemeros:addonValues: the secret values take 3072 KiB, and a server's stick holds")
    doc["addonValues"] = {"db": "auth:\n  password: " + "x" * (2 * 1024 * 1024) + "\n"}
    load(doc, {"addonValues"})


def test_secret_values_applied_by_pulumi_take_no_room_on_a_stick() -> None:
    """With kubernetes.manage, Pulumi applies the charts' secret values itself: no stick carries them."""
    doc = base_settings()
    doc["addons"] = {"charts": [CHART]}
    doc["kubernetes"] = {"manage": True}
    doc["addonValues"] = {"db": "auth:\n  password: " + "x" * (3 * 1024 * 1024) + "\n"}
    load(doc, {"addonValues"})


def test_registry_credentials_count_towards_what_a_stick_carries() -> None:
    """Every node's stick carries registryAuth, a server's also the charts' secret values: together they must fit."""
    doc = base_settings()
    doc["addons"] = {"charts": [CHART]}
    doc["addonValues"] = {"db": "auth:\n  password: " + "x" * (2 * 1024 * 1024) + "\n"}
    doc["registryAuth"] = {"mirror.lan:5000": {"identityToken": "t" * (1024 * 1024)}}
    (problem,) = problems_of(doc, {"addonValues", "registryAuth"})
    assert problem.startswith(
        "ephemeros:addonValues: the secret values take 2048 KiB and the registries' credentials (registryAuth) 1024 "
        "KiB, and a server's stick holds 3008 KiB of them"
    )
    del doc["addons"], doc["addonValues"]
    doc["registryAuth"] = {"mirror.lan:5000": {"identityToken": "t" * (3 * 1024 * 1024)}}
    (problem,) = problems_of(doc, {"registryAuth"})
    assert problem.startswith("ephemeros:registryAuth: the registries' credentials take 3072 KiB, and a node's stick")
