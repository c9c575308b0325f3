"""How `pulumi up` grows with the cluster: a 3-node stack (the dev stack) beside a 50-node one (3 servers, 47
agents), measured side by side in one run, under the real engine.

    make bench-scale      (or: .venv/bin/python -m bench.scale [--nodes 3 50] [--runs 3])

For each size: the first `pulumi up --yes` (as `make up` runs it: a preview, then the update), a no-change one, a
no-change `pulumi preview` (medians of --runs), each in wall seconds and the CPU seconds of all its processes,
the state's size per checkpoint, and the build directory's size on disk. Then the ratios the project aims for:
50-node over 3-node first up, and no-change up, each at most 1.5. Results go to build/bench/scale.json. These are
measurements, not tests: the machines are shared and noisy, so compare runs made side by side.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import median_row, write_report
from harness.pulumi_project import PulumiProject
from harness.stack import stack_settings

GOAL = 1.5  # 50-node over 3-node, for the first and the no-change up


def stack_of(nodes: int) -> dict[str, Any]:
    """The dev stack (1 server, 2 agents) at its own size; any other size has 3 servers on embedded etcd (sqlite
    serves one server only) and the rest agents."""
    settings = stack_settings("dev")
    if nodes != len(settings["nodes"]):
        servers = 3
        settings["datastore"] = {"type": "etcd"}
        settings["nodes"] = [
            {"hostname": f"node{i}", "role": "server" if i < servers else "agent"} for i in range(nodes)
        ]
    return settings


def disk_bytes(path: Path) -> int:
    """Bytes the files under `path` take on disk (sparse files count what they use)."""
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(project: PulumiProject, *args: str, cpu: list[float] | None = None) -> float:
    """Wall seconds of `pulumi <args>`; the CPU seconds of the engine and every process it ran go to `cpu`
    (steadier than wall time on a shared machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    project.run(*args)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return elapsed


def measure(nodes: int, runs: int, work: Path) -> dict[str, Any]:
    project = PulumiProject(work / "ephemeros", "scale")
    project.init(stack_of(nodes))
    first_cpu: list[float] = []
    first = timed(project, "up", "--yes", cpu=first_cpu)
    cpu: list[float] = []
    unchanged = [timed(project, "up", "--yes", cpu=cpu) for _ in range(runs)]
    previews = [timed(project, "preview") for _ in range(runs)]
    row = {
        "nodes": nodes,
        "resources": len(project.resources()),
        "first_up_s": first,
        "first_up_cpu_s": first_cpu[0],
        "no_change_up_s": unchanged,
        "no_change_up_cpu_s": cpu,
        "no_change_preview_s": previews,
        "state_bytes": project.state_file.stat().st_size,
        "build_bytes_on_disk": disk_bytes(project.build_dir),
        "build_bytes": sum(p.stat().st_size for p in project.build_dir.rglob("*") if p.is_file()),
    }
    project.run("destroy", "--yes", "--skip-preview")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs=2, default=[3, 50], metavar=("SMALL", "LARGE"))
    parser.add_argument("--runs", type=int, default=3, help="no-change runs per size")
    args = parser.parse_args()
    rows = []
    for nodes in args.nodes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(nodes, args.runs, Path(tmp)))
    print(f"(cpus: {os.cpu_count()}; load before: {os.getloadavg()[0]:.1f})")
    print("\n| nodes | resources | first up s (CPU s) | state KiB | build MiB (on disk) |")
    print("|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row['nodes']} | {row['resources']} | {row['first_up_s']:.1f} ({row['first_up_cpu_s']:.1f}) "
            f"| {row['state_bytes'] / 1024:.0f} "
            f"| {row['build_bytes'] / 2**20:.0f} ({row['build_bytes_on_disk'] / 2**20:.1f}) |"
        )
    print("\n| what | median s | runs |")
    print("|---|---:|---|")
    for row in rows:
        print(median_row(f"{row['nodes']} nodes, no-change up", row["no_change_up_s"]))
        print(median_row(f"{row['nodes']} nodes, no-change up, CPU s", row["no_change_up_cpu_s"]))
        print(median_row(f"{row['nodes']} nodes, no-change preview", row["no_change_preview_s"]))
    small, large = rows
    ratios = {
        "first_up": large["first_up_s"] / small["first_up_s"],
        "no_change_up": statistics.median(large["no_change_up_s"]) / statistics.median(small["no_change_up_s"]),
    }
    print(f"\n| ratio {large['nodes']} / {small['nodes']} nodes | value | goal |")
    print("|---|---:|---:|")
    for name, value in ratios.items():
        print(f"| {name.replace('_', ' ')} | {value:.2f} | <= {GOAL} |")
    write_report("scale", {"sizes": rows, "ratios": ratios, "goal": GOAL})


if __name__ == "__main__":
    main()
