"""ephemeros: OS-diskless k3s clusters on bare metal. Loads the stack's settings, builds the cluster, exports."""

from pathlib import Path

import pulumi

from base.build_layout import BuildDir
from components.cluster import Cluster, ClusterArgs
from stack.config import load_stack_settings, stop
from stack.preflight import PreflightError, check_machine

loaded = load_stack_settings()
settings = loaded.settings
try:
    machine = check_machine(settings, Path.cwd())
except PreflightError as error:
    stop(str(error))
cluster = Cluster(
    settings.cluster_name,
    ClusterArgs(
        settings,
        loaded.credentials,
        boot_files=machine.boot_files,
        build_dir=BuildDir(Path("build") / pulumi.get_stack()),
        dns_updater=machine.dns_updater,
        etcd_rejoin=machine.etcd_rejoin,
    ),
)
pulumi.export("nodes", cluster.nodes_output())
pulumi.export("kubeconfig", cluster.pki.kubeconfig)
if cluster.datastore is not None:
    pulumi.export("datastore", cluster.datastore_output())
