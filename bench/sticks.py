"""Measure stick images: build time per node and size, for 1, 10 and 50 nodes; and the time to boot one in QEMU.

    make bench            (or: .venv/bin/python -m bench.sticks [--nodes 1 10 50] [--boots 3])

Image builds are timed twice: the builder alone (bootmedia.image.build_image), and `pulumi up` of a whole stack
with the real engine. Boots are timed from QEMU's start until the stand-in init reports (see harness/).
Results are printed as a table and written to build/bench/sticks.json. These are measurements, not tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import median_row, write_report
from bootmedia.boot_script import stick_boot_script, syslinux_config
from bootmedia.bootloader import check_bootloader
from bootmedia.image import ImageSpec, build_image
from harness import qemu
from harness.boot_assets import MARKER, boot_assets
from harness.generated_secrets import GeneratedSecrets, secret_files
from harness.http_server import serve_directory
from harness.pulumi_project import PulumiProject
from harness.stack import REPO, stack_settings, to_raw
from settings import load_settings
from settings.model import Bootloader

FLATCAR_VERSION = "4593.2.5"


def stack_with(nodes: int, flatcar_url: str | None = None) -> dict[str, Any]:
    settings = stack_settings("dev")
    settings["nodes"] = [{"hostname": f"node{i}", "role": "server" if i == 0 else "agent"} for i in range(nodes)]
    if flatcar_url:
        settings["flatcar"] = {"version": FLATCAR_VERSION, "baseUrl": flatcar_url}
    return settings


def builder_seconds(nodes: int, work: Path) -> tuple[list[float], int]:
    loaded = load_settings(to_raw(stack_with(nodes)), set())
    files = check_bootloader(Bootloader(), REPO)
    seconds, size = [], 0
    for node in loaded.settings.nodes:
        spec = ImageSpec(
            f"bench/{node.hostname}",
            stick_boot_script(loaded.settings, node),
            syslinux_config(),
            files,
            secret_files(loaded.settings, node, loaded.credentials, GeneratedSecrets("s" * 48, "a" * 48, "p" * 32)),
        )
        started = time.perf_counter()
        build_image(work / f"{node.hostname}.img", spec)
        seconds.append(time.perf_counter() - started)
        size = (work / f"{node.hostname}.img").stat().st_size
    return seconds, size


def engine_seconds(nodes: int, work: Path) -> float:
    project = PulumiProject(work / "ephemeros", "bench")
    project.init(stack_with(nodes))
    started = time.perf_counter()
    project.run("up", "--yes", "--parallel", "8")
    elapsed = time.perf_counter() - started
    project.run("destroy", "--yes")
    return elapsed


def boot_seconds(boots: int, work: Path) -> dict[str, list[float]]:
    assets = boot_assets()
    release = work / "mirror" / FLATCAR_VERSION
    release.mkdir(parents=True)
    (release / "flatcar_production_pxe.vmlinuz").write_bytes(assets.kernel.read_bytes())
    (release / "flatcar_production_pxe_image.cpio.gz").write_bytes(assets.initrd.read_bytes())
    results: dict[str, list[float]] = {firmware: [] for firmware in qemu.FIRMWARES}
    with serve_directory(work / "mirror") as (url, _):
        settings = stack_with(1, url.replace("127.0.0.1", qemu.HOST_FROM_GUEST))
        loaded = load_settings(to_raw(settings), set())
        node = loaded.settings.nodes[0]
        spec = ImageSpec(
            "bench/boot",
            stick_boot_script(loaded.settings, node),
            syslinux_config(),
            check_bootloader(Bootloader(), REPO),
            {"k3s.env": 'K3S_TOKEN="bench"\n'},
        )
        build_image(work / "boot.img", spec)
        for firmware in qemu.FIRMWARES:
            for _ in range(boots):
                result = qemu.boot(work / "boot.img", firmware, work / "run", until=lambda t: f"{MARKER} done" in t)
                if not result.reached:
                    raise RuntimeError(f"{firmware} boot did not reach the init:\n{result.serial[-2000:]}")
                results[firmware].append(result.seconds)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--boots", type=int, default=3, help="boots per firmware")
    args = parser.parse_args()
    report: dict[str, Any] = {"builds": [], "boots": {}}
    print("| nodes | builder s/node (median) | builder total s | pulumi up total s | pulumi up s/node | image MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nodes in args.nodes:
        with tempfile.TemporaryDirectory() as tmp:
            seconds, size = builder_seconds(nodes, Path(tmp))
        with tempfile.TemporaryDirectory() as tmp:
            engine = engine_seconds(nodes, Path(tmp))
        row = {
            "nodes": nodes,
            "builder_median_s": statistics.median(seconds),
            "builder_total_s": sum(seconds),
            "pulumi_up_s": engine,
            "image_bytes": size,
        }
        report["builds"].append(row)
        print(
            f"| {nodes} | {row['builder_median_s']:.2f} | {row['builder_total_s']:.1f} | {engine:.1f} "
            f"| {engine / nodes:.2f} | {size / 2**20:.0f} |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        boots = boot_seconds(args.boots, Path(tmp))
    print("\n| firmware | QEMU start to test init, s (median of runs) | runs |")
    print("|---|---:|---|")
    for firmware, runs in boots.items():
        report["boots"][firmware] = runs
        print(median_row(firmware, runs))
    write_report("sticks", report)


if __name__ == "__main__":
    main()
