"""Values both the command line and the library need, in a module that imports nothing: the CLI
declares its options from these without loading the library (``snapstore --help`` loads none of
it: 0.33 s against 2.17 s), and the library uses the same objects, so the two cannot drift apart."""

#: Airtable's endpoint (the --api-url default).
DEFAULT_API_URL = "https://api.airtable.com"

#: A new store's format, the newest this snapstore writes.
FORMAT_VERSION = 4

#: The most processes an export encodes records with (--workers).
MAX_WORKERS = 256

#: What diff and history render (--format).
DIFF_FORMATS = ("text", "json", "markdown")
