"""The change feed: Airtable webhooks polled so a snapshot reads only what changed (see engine.py)."""
