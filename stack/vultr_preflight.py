"""Read-only checks of Vultr at preview, for datastore.type vultr: the API key is accepted (GET /v2/account), and
the region, the plan (offered in that region) and the operating system are in Vultr's catalog (GET /v2/regions,
/v2/plans with each plan's locations, /v2/os; paged as the API pages them; the catalog needs no key).

A refused key is a problem, and so is an answer by which apiUrl is not Vultr's API. What the catalog lacks is a
problem when a VM is to be made with it: when the stack has no VM at Vultr (none recorded by its last update, or
that one is gone), or when the setting differs from what the VM runs (a new VM; for the plan, an upgrade in
place). Otherwise it is a warning: the VM runs on (Vultr retires images and plans that VMs still run), but no new
one could be made so. An API that cannot be reached is a warning, as `pulumi up` may still work later. The client
is imported only when the stack has a Vultr datastore."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from settings import NAMESPACE
from settings.credentials import Credentials
from settings.datastore import Vultr
from settings.model import Settings
from stack.service_check import ServiceCheck

if TYPE_CHECKING:
    from providers.vultr.api import VultrApi

TIMEOUT = 10.0  # seconds per request: a preview does not wait long for an API that does not answer
RETRIES = 2
LISTED = 40  # a refusal lists what Vultr offers when it offers no more than this, and no close match
SETTINGS = {"region": "datastore.vultr.region", "plan": "datastore.vultr.plan", "os": "datastore.vultr.os"}


class _Unreachable(Exception):
    pass


class _NotVultr(Exception):
    """The API at apiUrl answers, but not as Vultr's does."""


@dataclass(frozen=True)
class _Miss:
    """What the catalog lacks for one setting; `made_of`: the settings a VM runs with for it to be this one."""

    setting: str  # region, plan or os
    text: str
    made_of: tuple[str, ...]

    @property
    def key(self) -> str:
        return SETTINGS[self.setting]

    def runs_on(self, vm: dict[str, Any], vultr: Vultr) -> bool:
        """Whether `vm` runs with these settings as they are, so that none of them makes anything new."""
        return all(vm.get(name) == getattr(vultr, name) for name in self.made_of)

    def problem(self) -> str:
        return f"{NAMESPACE}:{self.key}: {self.text}"

    def kept(self) -> str:
        return (
            f"{self.key}: {self.text}. The datastore VM, which runs with it, runs on; but no new VM could be made so "
            "(when the VM is replaced, or made again after it was deleted): choose what Vultr offers before then"
        )

    def undecided(self, why: str) -> str:
        return (
            f"{self.key}: {self.text}. Whether the datastore VM runs with it, or would be made anew, could not be "
            f"asked ({why}); no new VM could be made so"
        )


def _key(api: VultrApi) -> str | None:
    """The key's problem, if Vultr refuses it."""
    from providers.vultr.api import API_KEY_SETTING, VultrError

    try:
        found = api.get("/account")
    except VultrError as error:
        if error.status == 401:
            return f"{NAMESPACE}:{API_KEY_SETTING}: Vultr refuses the key: {error}"
        if error.status is None or error.status >= 500 or error.status == 429:
            raise _Unreachable(str(error)) from None
        if error.status == 403:
            return None  # the key's user may not read the account (billing); the key itself was accepted
        raise _NotVultr(str(error)) from None
    if found is None:
        raise _NotVultr(f"Vultr API: GET {api.where('/account')} answered 404")
    return None


def _one_of(what: str, wanted: str, offered: list[str], where: str) -> str:
    close = difflib.get_close_matches(wanted, offered, n=5, cutoff=0.5)
    if close:
        hint = f"close matches: {', '.join(close)}"
    elif len(offered) <= LISTED:
        hint = f"it lists {', '.join(sorted(offered))}"
    else:
        hint = f"it lists {len(offered)} others"
    return f"Vultr offers no {what} {wanted!r} (GET {where}); {hint}"


def _catalog(vultr: Vultr, api: VultrApi) -> list[_Miss]:
    """What the catalog lacks of region, plan and os."""
    from providers.vultr.api import VultrError

    try:
        regions = [str(region["id"]) for region in api.list("/regions", "regions")]
        plans = {str(plan["id"]): plan for plan in api.list("/plans", "plans")}
        systems = [str(system["name"]) for system in api.list("/os", "os")]
    except VultrError as error:
        raise _Unreachable(str(error)) from None
    misses = []
    if vultr.region not in regions:
        misses.append(_Miss("region", _one_of("region", vultr.region, regions, api.where("/regions")), ("region",)))
    plan = plans.get(vultr.plan)
    if plan is None:
        misses.append(_Miss("plan", _one_of("plan", vultr.plan, list(plans), api.where("/plans")), ("plan",)))
    elif vultr.region in regions and vultr.region not in plan.get("locations", []):
        where = ", ".join(sorted(plan.get("locations", []))) or "no region"
        text = (
            f"Vultr does not offer {vultr.plan} in region {vultr.region} (GET {api.where('/plans')} lists it in "
            f"{where}): choose a plan offered there, or another region"
        )
        misses.append(_Miss("plan", text, ("plan", "region")))
    if vultr.os not in systems:
        misses.append(_Miss("os", _one_of("operating system", vultr.os, systems, api.where("/os")), ("os",)))
    return misses


def _unreachable(api: VultrApi, what: str, error: Exception) -> str:
    return (
        f"datastore.vultr: the Vultr API at {api.origin} could not be asked whether {what} are right ({error}); "
        "pulumi up will find out"
    )


def _judged(misses: list[_Miss], vultr: Vultr, api: VultrApi, recorded: str | None) -> ServiceCheck:
    """The catalog's misses as problems where a VM is to be made with them, as warnings where the stack's VM runs
    with them."""
    from providers.vultr.api import VultrError

    if recorded is None:
        return ServiceCheck(problems=tuple(miss.problem() for miss in misses))
    try:
        vm = api.instance(recorded)
    except VultrError as error:
        return ServiceCheck(warnings=tuple(miss.undecided(str(error)) for miss in misses))
    if vm is None:  # deleted since: the next VM is a new one
        return ServiceCheck(problems=tuple(miss.problem() for miss in misses))
    return ServiceCheck(
        problems=tuple(miss.problem() for miss in misses if not miss.runs_on(vm, vultr)),
        warnings=tuple(miss.kept() for miss in misses if miss.runs_on(vm, vultr)),
    )


def check_vultr(settings: Settings, credentials: Credentials, recorded_vm: Callable[[], str | None]) -> ServiceCheck:
    """The key's problem, the catalog's problems and warnings, or a warning when Vultr's API cannot be reached from
    here. `recorded_vm` says which VM the stack's last update recorded (stack.outputs); it is asked only when the
    catalog lacks a setting."""
    vultr = settings.datastore.vultr
    if vultr is None or credentials.vultr_api_key is None:
        return ServiceCheck()  # settings.rules reports a missing key
    from providers.vultr.api import API_KEY_SETTING, API_URL, VultrApi

    api = VultrApi(api_url=vultr.api_url, api_key=credentials.vultr_api_key, timeout=TIMEOUT, retries=RETRIES)
    try:
        refused = _key(api)
    except _NotVultr as error:
        return ServiceCheck(
            problems=(
                f"{NAMESPACE}:datastore.vultr.apiUrl: {error}: {api.origin} does not answer as Vultr's API does; "
                f"set Vultr's ({API_URL}) or the address of a proxy in front of it",
            )
        )
    except _Unreachable as error:
        return ServiceCheck(warnings=(_unreachable(api, f"{API_KEY_SETTING}, region, plan and os", error),))
    key = (refused,) if refused is not None else ()
    try:
        misses = _catalog(vultr, api)  # asked with a refused key too: every problem shows at once
    except _Unreachable as error:
        return ServiceCheck(problems=key, warnings=(_unreachable(api, "region, plan and os", error),))
    if not misses:
        return ServiceCheck(problems=key)
    recorded = recorded_vm()
    if refused is not None and recorded is not None:
        return ServiceCheck(problems=key, warnings=tuple(miss.undecided("Vultr refuses the key") for miss in misses))
    judged = _judged(misses, vultr, api, recorded)
    return ServiceCheck(problems=(*key, *judged.problems), warnings=judged.warnings)
