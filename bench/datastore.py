"""Measure the Vultr datastore: `pulumi up` of a stack with one, against the local Vultr API; and how long a VM
made from the program's user data takes from QEMU's start to PostgreSQL answering over TLS (TCG).

    make bench-datastore     (or: .venv/bin/python -m bench.datastore [--ups 3] [--boots 1])

The API server answers at once and instances boot after two reads, so `pulumi up` here is the program's own
time (keys, certificates, user data, the engine) plus the provider's polling, not Vultr's. Results are printed
and written to build/bench/datastore.json. These are measurements, not tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from base import datastore_layout as D
from bench.report import median_row, write_report
from harness.datastore_world import datastore_world, stack
from harness.fakes.vultr import FakeVultr, running
from harness.pulumi_project import PulumiProject
from harness.stack import SSH_KEY


def up_seconds(work: Path) -> dict[str, float]:
    with running(FakeVultr()) as fake:
        account = fake.add_account()
        project = PulumiProject(work / "ephemeros", "bench")
        project.init(stack(fake, SSH_KEY))
        project.set_secret("vultrApiKey", account.api_key)
        project.set_secret("dumpsAccessKeyId", "bench")
        project.set_secret("dumpsSecretAccessKey", "bench-secret")
        started = time.perf_counter()
        project.run("up", "--yes")
        first = time.perf_counter() - started
        started = time.perf_counter()
        project.run("up", "--yes")
        again = time.perf_counter() - started
        for urn in (r["urn"] for r in project.resources() if r.get("protect")):
            project.run("state", "unprotect", urn, "--yes")
        project.run("destroy", "--yes")
    return {"first_up_s": first, "no_change_up_s": again}


def boot_seconds(work: Path) -> dict[str, float]:
    started = time.perf_counter()
    with datastore_world(work) as world:
        answered = world.vm.wait_for_port(D.POSTGRES_PORT, timeout=60)
        return {
            "setup_to_cloud_init_done_s": time.perf_counter() - started,
            "qemu_start_to_cloud_init_done_s": world.cloud_init.seconds,
            "port_wait_after_cloud_init_s": answered,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ups", type=int, default=3)
    parser.add_argument("--boots", type=int, default=1)
    args = parser.parse_args()
    report: dict[str, Any] = {"ups": [], "boots": []}
    for _ in range(args.ups):
        with tempfile.TemporaryDirectory() as tmp:
            report["ups"].append(up_seconds(Path(tmp)))
    for _ in range(args.boots):
        with tempfile.TemporaryDirectory() as tmp:
            report["boots"].append(boot_seconds(Path(tmp)))
    print("| measure | median s | runs |")
    print("|---|---:|---|")
    for group in ("ups", "boots"):
        for key in report[group][0] if report[group] else ():
            runs = [run[key] for run in report[group]]
            print(median_row(key, runs))
    write_report("datastore", report)


if __name__ == "__main__":
    main()
