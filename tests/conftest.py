"""Fixtures and hooks shared by the tests.

Scenarios: a module marked `pytest.mark.scenario` tells one story in steps, its tests in file order, each starting
from the state the previous ones left (a stack under the real engine is slow to make, and a stack's life is the
thing under test). A step whose predecessors did not all pass fails at once, naming the first that did not,
instead of failing later in a confusing way; so run such a module whole.

Side by side: `make test` runs the modules on several pytest-xdist workers (`--dist loadfile`), each module whole
on one worker in file order, the longest first: those that boot virtual machines, then those that start servers or
the engine, then the rest. The modules that boot VMs go in VM_GROUPS, each group on one worker, so that no more VMs
run at once than there are groups: under TCG a VM takes a core, and three at once on two cores made cloud-init
outlast its test's timeout.
"""

from __future__ import annotations

import inspect
import shutil
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pulumi
import pytest

from harness.k3s_mirror import K3sMirror
from harness.k3s_mirror import k3s_mirror as serve_k3s_mirror
from harness.stack import base_settings
from tests.mocks import Recorder

_PASSED: dict[str, set[str]] = {}


def _steps(module: ModuleType) -> list[str]:
    """The module's test functions, in the order they are written."""
    functions = [f for name, f in vars(module).items() if name.startswith("test_") and inspect.isfunction(f)]
    return [f.__name__ for f in sorted(functions, key=lambda f: f.__code__.co_firstlineno)]


def _rank(item: pytest.Item) -> int:
    """Where a test's module goes in the run: the longest modules first."""
    for rank, marker in enumerate(("vm", "slow", "engine")):
        if item.get_closest_marker(marker) is not None:
            return rank
    return 3


# The VM modules by group, each group run whole on one worker, the groups about as long as each other on two shared
# cores (the datastore VM's module ~20-25 min; the whole node's and the boot tests' together ~15-20).
VM_GROUPS = {
    "tests/test_datastore_vm.py": "datastore-vm",
    "tests/test_whole_node.py": "more-vms",
    "tests/test_boot_qemu.py": "more-vms",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile`, with the modules of each of VM_GROUPS as one unit of work."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class ModulesAndVmGroups(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return VM_GROUPS.get(module, module)

    return ModulesAndVmGroups(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    module_rank: dict[str, int] = {}
    for item in items:
        module = item.nodeid.split("::")[0]
        module_rank[module] = min(module_rank.get(module, 3), _rank(item))
    items.sort(key=lambda item: module_rank[item.nodeid.split("::")[0]])  # stable: a module keeps its order


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("scenario") is None or not isinstance(item, pytest.Function):
        return
    module = item.module
    passed = _PASSED.setdefault(module.__name__, set())
    steps = _steps(module)
    for step in steps[: steps.index(item.originalname)]:
        if step not in passed:
            pytest.fail(f"step {step} of this scenario has not passed, and this step starts from its state")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    in_scenario = isinstance(item, pytest.Function) and item.get_closest_marker("scenario") is not None
    if in_scenario and report.when == "call" and report.passed:
        _PASSED.setdefault(item.module.__name__, set()).add(item.originalname)  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="module")
def k3s_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[K3sMirror]:
    """A loopback mirror of the pinned k3s release (random bytes), which Ignition downloads while applying a config."""
    with serve_k3s_mirror(tmp_path_factory.mktemp("k3s-mirror"), base_settings()["k3s"]["version"]) as mirror:
        yield mirror


@pytest.fixture
def world_readable_tmp() -> Iterator[Path]:
    """A temporary directory that other users can enter (pytest's own tmp_path is private to root).

    Ignition writes a user's SSH keys as that user, so its scratch root must be reachable by them.
    """
    path = Path(tempfile.mkdtemp(prefix="ephemeros-test-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def recorder() -> Recorder:
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="ephemeros", stack="test", preview=False)
    return mocks
