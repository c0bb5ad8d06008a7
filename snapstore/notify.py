"""Telling someone how an unattended run went: notifications through apprise, and a
Healthchecks-style ping for dead-man's-switch monitoring.

apprise speaks e-mail, Slack, Discord, Teams, ntfy, Telegram, generic JSON webhooks and about a
hundred more from one URL each (``mailto://``, ``slack://``, ``json://host/path``), so snapstore
writes no sender of its own. What goes out is built from the run's outcome only: the store, the
bases, the CLI's one line, the exit code and the command that shows more. Never the token, the
password or any record content (:func:`scrub` removes known secret values as a last defence).

When: ``failure`` (exit 1, 2, 10, 11, 12, 130), ``partial`` (exit 3), ``recovery`` (success after a
failed or partial run of the same verb), ``budget`` (the month's API calls reached 80% of the
budget), and ``success`` only when asked (``notify_on``). A notification that cannot be delivered
is logged and never changes the run's exit code.

The ping follows Healthchecks' URL conventions: ``<url>/start`` when a run starts, ``<url>`` when it
succeeds, ``<url>/<exit code>`` when it fails (a non-zero code marks the check down, and the body
carries the one line).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

log = logging.getLogger("snapstore.notify")

EVENTS = ("failure", "partial", "recovery", "budget", "success")
DEFAULT_ON = ("failure", "partial", "recovery", "budget")
PING_TIMEOUT = 10.0


@dataclass
class Outcome:
    """A finished run as a notification describes it."""

    verb: str
    store: str
    exit_code: int
    line: str = ""
    bases: list[str] = field(default_factory=list)
    more: str = ""  # the command that shows more
    previous_failed: bool = False


def event_of(o: Outcome) -> str:
    if o.exit_code == 3:
        return "partial"
    if o.exit_code != 0:
        return "failure"
    return "recovery" if o.previous_failed else "success"


def message(o: Outcome) -> tuple[str, str]:
    """(title, body) of ``o``'s notification."""
    ev = event_of(o)
    word = {"failure": "FAILED", "partial": "PARTIAL", "recovery": "recovered", "success": "ok"}[ev]
    title = f"snapstore {o.verb} {word}: {o.store}"
    lines = [f"store: {o.store}"]
    if o.bases:
        lines.append(f"bases: {', '.join(o.bases)}")
    if o.line:
        lines.append(f"{'why' if ev in ('failure', 'partial') else 'result'}: {o.line}")
    lines.append(f"exit code: {o.exit_code}")
    if o.more:
        lines.append(f"more: {o.more}")
    return title, "\n".join(lines)


def scrub(text: str, secrets: Iterable[str]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "[redacted]")
    return text


def _where(url: str) -> str:
    """A notification URL as a log line may show it: scheme and host (the rest may hold a key)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname or ''}"


def send(urls: Sequence[str], title: str, body: str, *, kind: str = "info") -> bool:
    """Send to every URL; False (and a warning per URL in the log) when one was not delivered."""
    if not urls:
        return True
    import apprise

    ok = True
    ntype = {"failure": apprise.NotifyType.FAILURE, "partial": apprise.NotifyType.WARNING,
             "budget": apprise.NotifyType.WARNING, "recovery": apprise.NotifyType.SUCCESS,
             "success": apprise.NotifyType.SUCCESS}.get(kind, apprise.NotifyType.INFO)
    for url in urls:
        a = apprise.Apprise()
        if not a.add(url):
            log.warning("notification URL not understood: %s (see apprise's URL list)", _where(url))
            ok = False
            continue
        try:
            sent = a.notify(body=body, title=title, notify_type=ntype)
        except Exception as e:  # noqa: BLE001 - a notification never breaks a run
            log.warning("notification to %s failed: %s", _where(url), type(e).__name__)
            sent = False
        if not sent:
            log.warning("notification to %s could not be delivered", _where(url))
            ok = False
    return ok


def ping(url: str | None, what: str, body: str = "") -> bool:
    """Healthchecks-style ping: ``what`` is "start", "success" or an exit code."""
    if not url:
        return True
    import requests

    target = url.rstrip("/") + ("" if what == "success" else f"/{what}")
    try:
        r = requests.post(target, data=body.encode()[:10_000], timeout=PING_TIMEOUT)
        if r.status_code >= 400:
            log.warning("ping %s answered HTTP %s", _where(url), r.status_code)
            return False
        return True
    except requests.RequestException as e:
        log.warning("ping %s failed: %s", _where(url), type(e).__name__)
        return False


def wanted(event: str, notify_on: Iterable[str] | None) -> bool:
    on = set(notify_on or DEFAULT_ON)
    return event in on or (event == "recovery" and "success" in on)


def after_run(o: Outcome, *, urls: Sequence[str], notify_on: Iterable[str] | None, ping_url: str | None,
              secrets: Iterable[str] = ()) -> bool:
    """Notify and ping for a finished run; True when everything that was due went out."""
    secrets = [*secrets, *(os.environ.get(v, "") for v in ("AIRTABLE_TOKEN", "SNAPSTORE_PASSWORD"))]
    title, body = message(o)
    title, body = scrub(title, secrets), scrub(body, secrets)
    ok = True
    ev = event_of(o)
    if urls and wanted(ev, notify_on):
        ok = send(urls, title, body, kind=ev) and ok
    if ping_url:
        ok = ping(ping_url, "success" if o.exit_code == 0 else str(o.exit_code), body) and ok
    return ok


def budget_warning(store: str, used: int, budget: int, month: str, *, urls: Sequence[str],
                   notify_on: Iterable[str] | None) -> bool:
    if not urls or not wanted("budget", notify_on):
        return True
    title = f"snapstore: {used * 100 // budget}% of the API budget used: {store}"
    body = (f"store: {store}\nAPI calls in {month} (UTC): {used:,} of {budget:,}\n"
            f"more: snapstore stats --api --store {store}")
    return send(urls, title, body, kind="budget")
