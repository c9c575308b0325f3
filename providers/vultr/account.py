"""What every Vultr resource has: the API it lives behind and the key to it."""

from __future__ import annotations

import dataclasses

from pulumi.dynamic import ConfigureRequest, ResourceProvider

from providers.configured import configured_credential
from providers.props import SECRET, Props
from providers.vultr.api import API_KEY_SETTING, VultrApi

NOT_COMPARED = ("api_key",)  # a new key alone changes nothing at Vultr; refresh and delete use the configured one


@dataclasses.dataclass(frozen=True, kw_only=True)
class VultrProps(Props):
    api_url: str
    api_key: str = dataclasses.field(repr=False, metadata=SECRET)

    def api(self) -> VultrApi:
        return VultrApi(api_url=self.api_url, api_key=self.api_key)


class VultrProvider(ResourceProvider):
    """A provider whose refresh and delete use the stack's current vultrApiKey when one is set."""

    configured_key: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self.configured_key = configured_credential(req, API_KEY_SETTING)

    def api(self, state: VultrProps) -> VultrApi:
        return VultrApi(api_url=state.api_url, api_key=self.configured_key or state.api_key)
