"""The revenue forecast.

The engine (draws per source, period and group), its sources, plans, the snapshot,
comparison and backtest.
"""
