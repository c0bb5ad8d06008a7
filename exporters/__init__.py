"""Exporters: materialise a snapstore snapshot as JSON, YAML, NDJSON, CSV, SQLite and Parquet files.

Entry point: :func:`snapstore_exporters.export.export_snapshot`.
"""
