"""What a restore raises: every error derives from :class:`snapstore.errors.SnapstoreError`."""

from __future__ import annotations

from snapstore.errors import SnapstoreError


class RestoreError(SnapstoreError):
    """A restore cannot go on; ``str(exc)`` is one line for the user."""


class TamperedExport(RestoreError):
    """An exported folder does not match its manifest."""



class SimulatedCrash(RestoreError):
    """Raised by the test hook ``fail_after`` to simulate a restore killed half-way."""
