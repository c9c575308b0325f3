"""Vultr: a typed client for its API v2, under the dynamic providers that manage Vultr objects."""
