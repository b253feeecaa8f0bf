"""Generators of the seeded demo company; the public entry is :mod:`crmkit.datasets`."""
