"""Geo matching: visit ingestion and the faust matcher."""
