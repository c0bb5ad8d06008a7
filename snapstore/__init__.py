"""snapstore: incremental, content-addressed backups of Airtable."""

__version__ = "0.1.0"
