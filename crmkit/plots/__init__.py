"""Charts.

Numbers computed once (chart data), drawn by matplotlib or as SVG, with one amount formatter.
"""
