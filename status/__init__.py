"""`make status`: which nodes run an old config. A program outside the Pulumi program, run by the Makefile: it
reads the stack's `nodes` output and settings through the pulumi CLI and the heartbeat checks through the
healthchecks API, and prints per node what it booted against what `pulumi up` last made (see report.py)."""
