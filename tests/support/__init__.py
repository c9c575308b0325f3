"""Helpers shared by the tests: real servers on loopback, the real Ignition binary, the real Pulumi engine."""
