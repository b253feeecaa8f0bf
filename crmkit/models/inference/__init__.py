"""Inference shared by every model.

MAP, Laplace, ADVI and NUTS, and their diagnostics.
"""
