"""The providers' typed props: what every provider relies on to keep secrets out of state, diffs and messages."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

from pulumi.dynamic import ResourceProvider

import providers
from providers.props import Props
from providers.random_secret import RandomSecretProps


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
