"""The providers' typed props: what every provider relies on to keep secrets out of state, diffs and messages."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

import pulumi
from pulumi.dynamic import ResourceProvider

import providers
from providers.certificate import CertificateProps
from providers.props import DIGEST_PREFIX, Props, diff
from providers.random_secret import RandomSecretProps
from providers.stick_image import StickImageProps


def test_a_provider_whose_resources_can_change_in_place_updates_them() -> None:
    """Pulumi's default update forgets the resource's state: a provider must define its own if any compared input
    can change without a replacement."""
    missing = []
    for kind in all_props():
        if kind.__subclasses__():
            continue  # a base of other resources' props, such as VultrProps
        in_place = [
            f.name for f in dataclasses.fields(kind) if not f.metadata.get("output") and f.name not in kind.REPLACE_ON
        ]
        module = inspect.getmodule(kind)
        for _, provider in inspect.getmembers(module, inspect.isclass):
            if not issubclass(provider, ResourceProvider) or provider.__subclasses__():
                continue
            if provider.__module__ == kind.__module__ and in_place and provider.update is ResourceProvider.update:
                missing.append(f"{provider.__name__} ({', '.join(in_place)})")
    assert missing == []


def all_props() -> list[type[Props]]:
    for module in pkgutil.walk_packages(providers.__path__, "providers."):
        importlib.import_module(module.name)
    found: list[type[Props]] = []
    pending = list(Props.__subclasses__())
    while pending:
        kind = pending.pop()
        found.append(kind)
        pending += kind.__subclasses__()
    return found


def test_every_secret_field_stays_out_of_repr() -> None:
    kinds = all_props()
    assert len(kinds) >= 12  # every provider's props were found
    shown = [
        f"{kind.__name__}.{field.name}"
        for kind in kinds
        for field in dataclasses.fields(kind)
        if field.metadata.get("secret") and field.repr
    ]
    assert shown == [], "give these fields repr=False, so that no message or log line can show them"


def test_a_secret_is_not_in_a_props_repr() -> None:
    props = RandomSecretProps(length=32, generation=0, result="the-generated-secret-value")
    assert "the-generated-secret-value" not in repr(props)


def test_large_inputs_are_kept_in_the_outputs_as_digests_only() -> None:
    """A Certificate's issuer key and a stick's secret files are needed only to make the object: the state keeps
    them once (inputs, encrypted), and the outputs only their digest, which is all a diff needs."""
    wanted = CertificateProps(key_pem="KEY", issuer_key_pem="ISSUER KEY", common_name="ca", days=1, pem="PEM")
    outputs = wanted.to_outputs()
    assert outputs["pem"] == "PEM"  # a real output is kept
    assert outputs["keyPem"].startswith(DIGEST_PREFIX)
    assert "KEY" not in outputs["keyPem"]
    assert outputs["issuerKeyPem"].startswith(DIGEST_PREFIX)
    same = wanted.to_props()
    assert not diff(outputs, same, CertificateProps).changes
    assert diff(outputs, {**same, "issuerKeyPem": "ANOTHER KEY"}, CertificateProps).replaces == ["issuerKeyPem"]
    assert not diff(same, same, CertificateProps).changes  # state written before digests: the same rule holds

    files = {"k3s.env": 'K3S_TOKEN="a"\n', "node-password": "b\n"}
    stick = StickImageProps(
        path="x.img",
        identity="lab/node0",
        boot_script="#!ipxe\n",
        syslinux_config="",
        boot_files={},
        boot_files_sha256={},
        secret_files=files,
    )
    kept = stick.to_outputs()
    assert kept["secretFiles"].startswith(DIGEST_PREFIX)
    assert not diff(kept, stick.to_props(), StickImageProps).changes
    rotated = {**stick.to_props(), "secretFiles": {**files, "node-password": "c\n"}}
    assert diff(kept, rotated, StickImageProps).changes


def test_a_digested_input_not_known_yet_counts_as_changed() -> None:
    """During a preview the engine hands over values not known yet (a rotated secret's, say): a stick whose files
    hold one will change."""
    files = {"k3s.env": 'K3S_TOKEN="a"\n'}
    stick = StickImageProps(
        path="x.img",
        identity="lab/node0",
        boot_script="#!ipxe\n",
        syslinux_config="",
        boot_files={},
        boot_files_sha256={},
        secret_files=files,
    )
    pending = {**stick.to_props(), "secretFiles": {"k3s.env": pulumi.output.Unknown()}}  # type: ignore[no-untyped-call]
    assert diff(stick.to_outputs(), pending, StickImageProps).changes
