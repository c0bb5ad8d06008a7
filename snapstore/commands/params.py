"""Parameter checks that several verbs share: counts, durations, sizes, subsets. Each turns a bad
value into click's usage error (exit 2) naming the option."""

from __future__ import annotations

import math

import click

#: A --keep-* count above this is a typo, not a policy (a million hourly snapshots is 114 years).
MAX_KEEP = 1_000_000


def count(_ctx, _param, value: str | None) -> int:
    """--keep-* N: a count from 0 to MAX_KEEP, or 'unlimited' (stored as -1)."""
    if value is None:
        return 0
    if value.strip().lower() == "unlimited":
        return -1
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a count: use a whole number from 0 to {MAX_KEEP:,} "
                                 "or 'unlimited'") from None
    if not 0 <= n <= MAX_KEEP:
        raise click.BadParameter(f"{n} is out of range: use a whole number from 0 to {MAX_KEEP:,} or 'unlimited'")
    return n


class Finite(click.FloatRange):
    """A number in a range, and a number at all: ``nan``, ``inf`` and ``1e400`` (inf once read)
    pass click's FloatRange, whose comparisons they never fail."""

    def convert(self, value, param, ctx):  # noqa: D102
        v = super().convert(value, param, ctx)
        if not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return v


#: The longest duration an option takes: beyond, it is a typo (and a date past year 9999).
MAX_SECONDS = 100 * 365 * 86400

#: The largest size an option takes (8 EiB): beyond, it is a typo, not a store.
MAX_BYTES = 1 << 63


def seconds(value: float | str | None, option: str):
    """A parsed duration checked against :data:`MAX_SECONDS` (usage error naming ``option``)."""
    if isinstance(value, float) and not (math.isfinite(value) and value <= MAX_SECONDS):
        raise click.BadParameter(f"{value:g} seconds is more than 100 years", param_hint=option)
    return value


def duration(_ctx, _param, value: str | None):
    from snapstore.ops.retention import Duration

    if not value:
        return None
    try:
        return Duration.parse(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def size_or_percent(_ctx, _param, value: str) -> str:
    from snapstore.ops.prune import parse_size_or_percent

    try:
        kind, v = parse_size_or_percent(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if kind == "bytes" and not v <= MAX_BYTES:
        raise click.BadParameter(f"{value!r} is larger than any store (8 EiB at most)")
    return value


def subset(_ctx, _param, value: str | None) -> str | None:
    from snapstore.ops.verify import parse_subset

    try:
        parse_subset(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value
