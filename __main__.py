"""ephemeros: OS-diskless k3s clusters on bare metal. Loads the stack's settings, builds the cluster, exports."""

from pathlib import Path

import pulumi

from components.build_dir import BuildDir
from components.cluster import Cluster, ClusterArgs
from components.stack_config import check_boot_files, check_dns_updater, load_stack_settings
from settings.dns_plan import needs_dns_updater

loaded = load_stack_settings()
settings = loaded.settings
cluster = Cluster(
    settings.cluster_name,
    ClusterArgs(
        settings,
        loaded.credentials,
        boot_files=check_boot_files(settings, Path.cwd()),
        build_dir=BuildDir(Path("build") / pulumi.get_stack()),
        dns_updater=check_dns_updater(settings, Path.cwd()) if needs_dns_updater(settings) else None,
    ),
)
pulumi.export("nodes", cluster.nodes_output())
