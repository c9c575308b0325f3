"""Pulumi's mocks, answering as the real providers would: what tests of the resource graph run the program with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import pulumi

from harness.pulumi_project import SECRET_MARKER, SECRET_SIG
from pki.x509 import new_key
from providers.certificate import CertificateProvider

KEYS: dict[str, str] = {}
RESERVED_ADDRESS = "203.0.113.7"  # what a mocked ReservedIp answers

F = TypeVar("F", bound=Callable[..., "pulumi.Output[Any]"])
mock_test = cast(Callable[[F], F], pulumi.runtime.test)  # Pulumi's decorator is untyped


def unwrapped(value: Any) -> Any:
    """Inputs as a provider gets them: secrets without Pulumi's wrapper."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == SECRET_MARKER:
            return unwrapped(value["value"])
        return {k: unwrapped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrapped(v) for v in value]
    return value


class Recorder(pulumi.runtime.Mocks):
    """Answers every registration and keeps (type, name, inputs) of each."""

    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append((args.typ, args.name, args.inputs))
        outputs = dict(args.inputs)
        if args.typ.endswith(":RandomSecret"):
            outputs["result"] = f"generated-{args.name}"
        if args.typ.endswith(":RandomId"):
            outputs["hex"] = f"id-of-{args.name}"
        if args.typ.endswith(":HeartbeatCheck"):
            outputs["uuid"] = f"uuid-of-{args.name}"
            outputs["pingUrl"] = f"https://hc.example.net/ping/uuid-of-{args.name}"
        if args.typ.endswith(":PrivateKey"):  # real keys, as the provider makes them (one of each kind, reused)
            pem = KEYS.setdefault(args.inputs["kind"], new_key(args.inputs["kind"]))
            outputs["pem"] = pem
        if args.typ.endswith(":VultrReservedIp"):
            outputs["address"] = RESERVED_ADDRESS
        if args.typ.endswith(":Certificate"):  # real certificates, made by the provider itself
            outputs = CertificateProvider().create(unwrapped(args.inputs)).outs or {}
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        return {}, None

    def of_type(self, suffix: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.resources if r[0].endswith(suffix)]
