"""ephemeros: OS-diskless k3s clusters on bare metal. Loads the stack's settings, builds the cluster, exports."""

from pathlib import Path

import pulumi

from base.build_layout import BuildDir
from components.cluster import Cluster, ClusterArgs
from stack.config import load_stack_settings, stop, warn
from stack.outputs import DATASTORE
from stack.preflight import PreflightError, check_machine, only_reads_or_deletes
from stack.sdk import project_stack_traces, quiet_sdk_debug_messages, wait_for_outputs_once_each
from stack.services import check_services

quiet_sdk_debug_messages()
project_stack_traces()
wait_for_outputs_once_each()
loaded = load_stack_settings()
settings = loaded.settings
build_dir = BuildDir(Path("build") / pulumi.get_stack())
previewing = pulumi.runtime.is_dry_run() and not only_reads_or_deletes()  # `pulumi up` previews first
services = check_services(settings, loaded.credentials, previewing=previewing)
try:
    machine = check_machine(settings, Path.cwd(), build_dir, service_problems=services.problems)
except PreflightError as error:
    stop(str(error))
warn("this machine can run the stack", machine.warnings)
warn("the services the stack uses were checked", services.warnings)
cluster = Cluster(
    settings.cluster_name,
    ClusterArgs(
        settings,
        loaded.credentials,
        boot_files=machine.boot_files,
        build_dir=build_dir,
        dns_updater=machine.dns_updater,
        etcd_rejoin=machine.etcd_rejoin,
        known_ping_urls=services.ping_urls,
    ),
)
pulumi.export("nodes", cluster.nodes_output())
pulumi.export("kubeconfig", cluster.pki.kubeconfig)
if cluster.datastore is not None:
    pulumi.export(DATASTORE, cluster.datastore_output())
