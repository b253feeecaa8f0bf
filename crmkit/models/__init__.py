"""Bayesian models: customer lifetime value, the sales pipeline, the marketing mix."""
