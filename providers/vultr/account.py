"""What every Vultr resource has: the API it lives behind, the key to it, its owner, and its mark.

The owner is the datastore's owner id (a random id the stack makes once, before any Vultr object, and keeps in its
state) with the resource's name: unique to the stack, even where two stacks share their project and stack names
(every DIY backend calls its organization "organization"). An object is made carrying a mark (in a label, a
description, a rule's notes or a tag) taken of its owner and of the values whose change replaces it. A run cut
short after Vultr made an object but before Pulumi recorded it leaves the object at Vultr only: the next `pulumi
up` computes the same mark, finds the object by it and adopts it instead of making a second VM or address. A
replacement, which Pulumi makes before it deletes its predecessor, differs in those values, so it never finds its
predecessor: adopting it would have Pulumi delete the object it had just adopted. (`pulumi up --replace` with
nothing changed gives no such value: nothing in a create tells it from a retry. The VM, which keeps its address
then, is deleted before its successor is made, so it has no predecessor to find.)

The mark is made at create and kept in the state for the object's life: update and refresh use the one the object
was made with. Objects made before owner ids keep the mark they were made with (of the organization, project,
stack and resource name); objects made before marks have none.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Self

import pulumi
from pulumi.dynamic import ConfigureRequest, ResourceProvider

from providers.configured import configured_credential
from providers.props import SECRET, Props, camel
from providers.vultr.api import API_KEY_SETTING, Json, VultrApi

# A new key alone changes nothing at Vultr (refresh and delete use the configured one); the mark is the one the
# object was made with, and the owner only says what the next object's mark is made of.
NOT_COMPARED = ("api_key", "owner", "mark")
_MARK_IN_TEXT = re.compile(r" \[ephemeros ([0-9a-f]{16})\]$")
_MARK_TAG = "ephemeros-"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def owner(owner_id: pulumi.Input[str], resource_name: str) -> pulumi.Output[str]:
    """The owner of the resource called `resource_name`: the datastore's owner id (a RandomId) with that name."""
    return pulumi.Output.from_input(owner_id).apply(lambda made: _digest(f"{made}/{resource_name}"))


def marked(text: str, mark: str) -> str:
    """`text` (a label, a description, a rule's notes) as Vultr keeps it: with the mark at its end."""
    return f"{text} [ephemeros {mark}]" if mark else text


def unmarked(text: str) -> str:
    """`text` as the stack writes it: without the mark."""
    return _MARK_IN_TEXT.sub("", text)


def has_mark(text: str, mark: str) -> bool:
    found = _MARK_IN_TEXT.search(text)
    return bool(mark) and found is not None and found.group(1) == mark


def mark_tag(mark: str) -> str:
    """The tag that marks an instance."""
    return f"{_MARK_TAG}{mark}"


def untagged(tags: list[str], mark: str) -> tuple[str, ...]:
    """An instance's tags as the stack writes them: without its mark's tag."""
    return tuple(tag for tag in tags if not (mark and tag == mark_tag(mark)))


def first_marked(items: list[Json], field: str, mark: str) -> Json | None:
    """The first of `items` whose `field` carries `mark`."""
    return next((item for item in items if has_mark(str(item.get(field, "")), mark)), None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VultrProps(Props):
    api_url: str
    api_key: str = dataclasses.field(repr=False, metadata=SECRET)
    owner: str = ""  # "": a state made before owner ids
    mark: str = ""  # the mark the object was made with (set at create); "": made before objects carried marks

    def api(self) -> VultrApi:
        return VultrApi(api_url=self.api_url, api_key=self.api_key)

    def to_make(self) -> Self:
        """These props with the mark of an object made now: of the owner, and of the values whose change replaces
        the object (`REPLACE_ON`), so that a replacement never carries its predecessor's mark."""
        props = self.to_props()
        made_of = [self.owner, *(props[camel(field)] for field in sorted(self.REPLACE_ON))]
        return dataclasses.replace(self, mark=_digest(json.dumps(made_of, sort_keys=True)))


class VultrProvider(ResourceProvider):
    """A provider whose refresh and delete use the stack's current vultrApiKey when one is set."""

    configured_key: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self.configured_key = configured_credential(req, API_KEY_SETTING)

    def api(self, state: VultrProps) -> VultrApi:
        return VultrApi(api_url=state.api_url, api_key=self.configured_key or state.api_key)
