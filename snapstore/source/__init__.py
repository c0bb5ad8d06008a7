"""Reading Airtable: a throttled, retrying pyairtable client returning raw JSON."""

from snapstore.source.adapter import RequestStats, RetryPolicy, ThrottledRetryAdapter, route_of
from snapstore.source.client import DEFAULT_API_URL, PAGE_SIZE, AirtableSource
from snapstore.source.errors import (
    AccessDenied,
    AttachmentExpired,
    AuthError,
    Cancelled,
    IteratorExpired,
    NotFound,
    SourceError,
    TransientError,
    Unreachable,
)
from snapstore.source.throttle import Limit, Throttle, limits_for

__all__ = [
    "AccessDenied", "AirtableSource", "AttachmentExpired", "AuthError", "Cancelled", "DEFAULT_API_URL",
    "IteratorExpired", "Limit", "NotFound", "PAGE_SIZE", "RequestStats", "RetryPolicy", "SourceError",
    "Throttle", "ThrottledRetryAdapter", "TransientError", "Unreachable", "limits_for", "route_of",
]
