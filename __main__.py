"""ephemeros: OS-diskless k3s clusters on bare metal. Loads the stack's settings, builds the cluster, exports."""

from pathlib import Path

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.stack_config import check_boot_files, load_stack_settings

loaded = load_stack_settings()
boot_files = check_boot_files(loaded.settings, Path.cwd())
cluster = Cluster(
    loaded.settings.cluster_name,
    ClusterArgs(loaded.settings, loaded.credentials, boot_files, build_dir=Path("build") / pulumi.get_stack()),
)
pulumi.export("nodes", cluster.nodes_output())
