"""Data handling: manifest schema and validation, task instruction templates.

Authors
 * audiollm-lobes developers, 2026
"""
