"""Airtable-shaped identifiers: 3-letter prefix + 14 characters of [0-9A-Za-z] (17 in all)."""

from __future__ import annotations

import hashlib
import random

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _encode(n: int) -> str:
    out = []
    for _ in range(14):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(out)


def random_id(prefix: str, rng: random.Random) -> str:
    """A new id drawn from ``rng`` (deterministic for a seeded rng)."""
    return prefix + _encode(rng.getrandbits(84))


def derived_id(prefix: str, *parts: object) -> str:
    """An id derived from arbitrary parts by hashing (deterministic, no rng state)."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return prefix + _encode(int.from_bytes(h[:11], "big"))
