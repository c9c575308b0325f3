"""Pulumi dynamic providers for things that have no Pulumi package usable here."""
