"""Local stand-ins for the paid APIs the tests cannot reach (healthchecks.io, Vultr), faithful to their docs."""
