"""Buy-till-you-die CLV models.

BG/NBD, Pareto/NBD and Gamma-Gamma: likelihoods, compiled kernels, predictions and the
calendar effect.
"""
