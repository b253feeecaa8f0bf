"""Marketing analysis.

The marketing-mix model, its transforms, scenarios, budget and plan inputs, and campaign
results.
"""
