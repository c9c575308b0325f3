"""Pulumi component resources: the thin shell that wires the pure core to resources."""
