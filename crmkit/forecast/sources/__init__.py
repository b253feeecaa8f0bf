"""The forecast's revenue sources.

Repeat purchases and a marketing spend plan beside the engine's pipeline and new business;
a source never imports the engine.
"""
