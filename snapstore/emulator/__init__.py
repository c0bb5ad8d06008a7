"""A local Airtable Web API emulator: a real HTTP server on 127.0.0.1 that pyairtable cannot tell
from api.airtable.com (see /work/shared/reference/airtable-api.md and DESIGN.md, "The emulator").

    from snapstore.emulator import Emulator, generate_workspace
    with Emulator(generate_workspace(seed=0)) as emu:
        api = pyairtable.Api(emu.token, endpoint_url=emu.url)
"""

from __future__ import annotations

from typing import Any

from .churn import churn
from .clock import ManualClock, ScaledClock, SystemClock
from .faults import Faults
from .generate import generate_workspace
from .server import Emulator
from .state import Workspace

__all__ = ["Emulator", "Workspace", "generate_workspace", "churn", "ManualClock", "ScaledClock", "SystemClock",
           "Faults", "route_uploads"]

CONTENT_PREFIXES = ("http://content.airtable.com", "https://content.airtable.com")


def route_uploads(api: Any, emu_url: str) -> None:
    """Send pyairtable's ``upload_attachment`` calls (hard-wired to content.airtable.com, keeping the
    scheme of ``endpoint_url``) to the emulator at ``emu_url``, by mounting a requests adapter on
    ``api.session`` that rewrites that prefix. Retries follow the session's existing adapter."""
    from requests.adapters import HTTPAdapter

    target = emu_url.rstrip("/")

    class _ToEmulator(HTTPAdapter):
        def send(self, request: Any, **kw: Any) -> Any:
            for prefix in CONTENT_PREFIXES:
                if request.url.startswith(prefix):
                    request.url = target + request.url[len(prefix):]
                    break
            return super().send(request, **kw)

    retries = api.session.get_adapter("http://x").max_retries
    for prefix in CONTENT_PREFIXES:
        api.session.mount(prefix, _ToEmulator(max_retries=retries))
