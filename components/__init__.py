"""Floor 4, components: the Pulumi component resources (`ephemeros:index:*`) that wire the pure core to the
providers: Cluster, ClusterSecrets, ClusterPki, Node, Datastore, DnsRecords, KubernetesAddons (opt-in). Each child
has `parent=self`; each registers its outputs."""
