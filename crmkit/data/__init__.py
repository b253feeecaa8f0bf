"""Data in and out of the store.

CSV/Excel import and export, vendor mappings, the seeded demo company, reference datasets
and simulators of known truth.
"""
