"""Validated scalar types for stack settings.

Each validator raises ValueError with a message that says what is wrong and what to write instead; the loader
prefixes it with the config key. Messages never repeat a value that may be a credential.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_MAC = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")
_K3S_VERSION = re.compile(r"^v\d+\.\d+\.\d+(-rc\d+)?\+k3s\d+$")
_FLATCAR_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.:*?\[\]-]{1,15}$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_TAINT = re.compile(r"^(?P<key>[^=:\s]+)(=(?P<value>[^:\s]*))?:(?P<effect>[A-Za-z]+)$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# Label keys the kubelet may set on its own node despite the NodeRestriction admission plugin.
_KUBELET_LABELS = {
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "node.kubernetes.io/instance-type",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
}
_KUBELET_LABEL_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")
# An image reference as containerd reads it (distribution/reference's grammar), its registry written out:
# registry[:port]/repository[:tag][@sha256:digest]. A registry is a domain name with a dot, localhost, or an IP
# address, so that it is not read as the repository's first part (which containerd takes as one of docker.io's).
_REGISTRY_COMPONENT = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<registry>(?:{_REGISTRY_COMPONENT}(?:\.{_REGISTRY_COMPONENT})*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?)"
    rf"/(?P<repository>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@sha256:(?P<digest>[0-9a-f]{64}))?",
    re.ASCII,
)


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def host_name(value: str) -> str:
    """A DNS label in lowercase: Kubernetes refuses a node name with capitals, and k3s names the node after it."""
    if value != value.lower() and _DNS_LABEL.match(value.lower()):
        raise ValueError(
            f"{value!r} has capital letters: names here are lowercase DNS labels (Kubernetes refuses capitals in a "
            f"node's name), and ephemeros does not change what you wrote: write {value.lower()!r}"
        )
    return dns_label(value)


def dns_label(value: str) -> str:
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"{value!r} is not a valid host name: use 1-63 lowercase letters, digits and hyphens, "
            "not starting or ending with a hyphen (e.g. node0)"
        )
    return value


def dns_name(value: str) -> str:
    name = value.rstrip(".")
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a valid DNS name: use dot-separated labels of lowercase letters, digits and "
            "hyphens (e.g. lab.example.com)"
        )
    return name


def mac_address(value: str) -> str:
    if not _MAC.match(value):
        raise ValueError(
            f"{value!r} is not a MAC address: write six hex pairs separated by colons (e.g. 52:54:00:12:34:56)"
        )
    mac = value.replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast address, which no network card has: check the address")
    return mac


def k3s_version(value: str) -> str:
    if not _K3S_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a k3s release: pin one exactly as its release is named, e.g. v1.36.4+k3s1 "
            "(channels such as 'stable' or 'latest' are not allowed: the binary's sha256 must match)"
        )
    return value


def flatcar_version(value: str) -> str:
    if value != "current" and not _FLATCAR_VERSION.match(value):
        raise ValueError(
            f"{value!r} is not a Flatcar release: pin one such as 4593.2.5, or write 'current' "
            "to boot whatever the channel's newest release is"
        )
    return value


def sha256_hex(value: str) -> str:
    if not _SHA256.match(value):
        raise ValueError(
            "is not a sha256 digest: copy the 64 hex characters for the 'k3s' file from the release's "
            "sha256sum-amd64.txt"
        )
    return value


def http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL: write it in full, e.g. https://example.com/path")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must be a base URL without '?' or '#' parts")
    return value.rstrip("/")


def interface_name(value: str) -> str:
    if not _IFNAME.match(value):
        raise ValueError(
            f"{value!r} is not a network interface name or pattern: use at most 15 characters such as eno1 or en*"
        )
    return value


def node_label_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if not _LABEL_NAME.match(name) or (prefix and not dns_name_ok(prefix)):
        raise ValueError(f"label key {key!r} is not valid: use [prefix/]name, e.g. ephemeros.io/zone")
    restricted = prefix.endswith(("kubernetes.io", "k8s.io"))
    if restricted and key not in _KUBELET_LABELS and not key.startswith(_KUBELET_LABEL_PREFIXES):
        raise ValueError(
            f"label key {key!r} is in a namespace that a node may not label itself with (NodeRestriction); "
            "use your own prefix, e.g. ephemeros.io/role"
        )
    return key


def dns_name_ok(value: str) -> bool:
    try:
        dns_name(value)
    except ValueError:
        return False
    return True


def node_label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label value {value!r} is not valid: use at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def taint(value: str) -> str:
    match = _TAINT.match(value)
    if not match or match["effect"] not in _TAINT_EFFECTS:
        raise ValueError(
            f"{value!r} is not a taint: write key[=value]:Effect with Effect one of {', '.join(_TAINT_EFFECTS)} "
            "(e.g. dedicated=storage:NoSchedule)"
        )
    node_label_key(match["key"])
    if match["value"]:
        node_label_value(match["value"])
    return value


_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


def ssh_public_key(value: str) -> str:
    if "PRIVATE KEY" in value:
        raise ValueError("is a private key: give the public key instead (the contents of the .pub file)")
    parts = value.split()
    if len(parts) < 2 or parts[0] not in _SSH_KEY_TYPES:
        raise ValueError(
            "is not an SSH public key: paste one line of a .pub file, e.g. 'ssh-ed25519 AAAAC3... you@host'"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (length,) = struct.unpack(">I", blob[:4])
        embedded_type = blob[4 : 4 + length].decode()
    except (binascii.Error, struct.error, UnicodeDecodeError):
        embedded_type = ""
    if embedded_type != parts[0]:
        raise ValueError(f"is not a valid {parts[0]} public key: its base64 part is damaged or truncated")
    return " ".join(parts)


def host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("is not host:port: write it like logs.example.com:12345")
    return value


_KERNEL_ARG = re.compile(r"^[^\s\"'\\]+$")


def kernel_arg(value: str) -> str:
    if not _KERNEL_ARG.match(value):
        raise ValueError(f"{value!r} is not one kernel argument: write one word per entry, without quotes or spaces")
    return value


def check_tag(value: str) -> str:
    """A healthchecks tag: the API keeps a check's tags as one space-separated string, so a tag is one word."""
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not a tag: a tag is one word without spaces (e.g. rack-2)")
    return value


def channel_list(value: str) -> str:
    """healthchecks channels: "*" (all), "" (none) or names and ids separated by commas. Spaces around the commas
    are dropped: the API matches names exactly, whitespace included."""
    if value.strip() in ("*", ""):
        return value.strip()
    items = [item.strip() for item in value.split(",")]
    if "" in items:
        raise ValueError(f"{value!r} has an empty entry: name channels separated by commas, e.g. ops-mail,oncall")
    return ",".join(items)


def name_server(value: str) -> str:
    """A name server's host name or IP address; an IPv6 address may come in brackets ([2001:db8::53]), which are
    dropped here and added back wherever a port follows."""
    host = value.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: only an IPv6 address goes in brackets") from None
        return host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not dns_name_ok(host.lower().rstrip(".")):
        raise ValueError(f"{value!r} is not a host name or an IP address (IPv6: 2001:db8::53 or [2001:db8::53])")
    return host.lower().rstrip(".")


def host_and_port(host: str, port: int) -> str:
    """host:port, with an IPv6 address in brackets ([2001:db8::53]:53), as Go's net.Dial and URLs want it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def image_reference(value: str) -> str:
    match = _IMAGE_REFERENCE.fullmatch(value)
    if match and not ("." in match["registry"] or ":" in match["registry"] or match["registry"] == "localhost"):
        raise ValueError(f"{value!r} names no registry: write it out, e.g. docker.io/{value}")
    if not match:
        raise ValueError(
            f"{value!r} is not an image reference: write registry/repository[:tag][@sha256:<64 hex digits>], the "
            "registry included, e.g. ghcr.io/kubereboot/kured:1.20.0 or mirror.lan:5000/kubereboot/kured:1.20.0"
        )
    return value


def absolute_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} is not an absolute path: write it from /, e.g. /dev/disk/by-id/usb-...")
    return value


HostName = Annotated[str, AfterValidator(host_name)]
DnsName = Annotated[str, BeforeValidator(_lower), AfterValidator(dns_name)]
MacAddress = Annotated[str, BeforeValidator(_lower), AfterValidator(mac_address)]
K3sVersion = Annotated[str, AfterValidator(k3s_version)]
FlatcarVersion = Annotated[str, AfterValidator(flatcar_version)]
Sha256 = Annotated[str, BeforeValidator(_lower), AfterValidator(sha256_hex)]
HttpUrl = Annotated[str, AfterValidator(http_url)]
InterfaceName = Annotated[str, AfterValidator(interface_name)]
LabelKey = Annotated[str, AfterValidator(node_label_key)]
LabelValue = Annotated[str, AfterValidator(node_label_value)]
Taint = Annotated[str, AfterValidator(taint)]
SshPublicKey = Annotated[str, AfterValidator(ssh_public_key)]
KernelArg = Annotated[str, AfterValidator(kernel_arg)]
AbsolutePath = Annotated[str, AfterValidator(absolute_path)]
ImageReference = Annotated[str, AfterValidator(image_reference)]
CheckTag = Annotated[str, AfterValidator(check_tag)]
ChannelList = Annotated[str, AfterValidator(channel_list)]
NameServer = Annotated[str, AfterValidator(name_server)]
