"""The sales pipeline models.

The open-pipeline win/loss/slip hazard model, its data preparation and kernels, and the
new-business model.
"""
