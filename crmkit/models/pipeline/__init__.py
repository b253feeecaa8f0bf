"""The sales pipeline models.

The open-pipeline win/loss/slip hazard model, its data preparation and kernels, and the
new-business model; both follow the model contract of :mod:`crmkit.models.base`
(:mod:`crmkit.models.pipeline.state` holds what they save besides their draws).
"""
