"""The results layer: it reads an experiment folder (analysis, tables, plots, export) and never
imports the runner (``tests/test_layering.py``).
"""
