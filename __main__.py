"""ephemeros: OS-diskless k3s clusters on bare metal. Loads the stack's settings, builds the cluster, exports."""

from pathlib import Path

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.stack_config import load_stack_settings

loaded = load_stack_settings()
stack = pulumi.get_stack()
cluster = Cluster(
    loaded.settings.cluster_name,
    ClusterArgs(loaded.settings, loaded.credentials, build_dir=Path("build") / stack),
)
pulumi.export("nodes", cluster.nodes_output())
