"""The seeded demo company.

Generators by concern; the entry points are in :mod:`crmkit.data.demo.company`.
"""
