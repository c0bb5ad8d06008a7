"""Real small files for attachments: PNG images with real dimensions (written with zlib + struct),
a tiny valid PDF, plain text; plus content-type guessing and image-dimension sniffing for uploads."""

from __future__ import annotations

import mimetypes
import struct
import zlib

_PNG_SIG = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def make_png(width: int, height: int, color: tuple[int, int, int] = (200, 80, 40), text: str = "") -> bytes:
    """A valid RGB PNG of the given size: a solid colour with a diagonal stripe, and an optional
    tEXt comment (makes otherwise identical images distinct files)."""
    if width < 1 or height < 1:
        raise ValueError("PNG dimensions must be positive")
    r, g, b = color
    px = bytes((r, g, b))
    alt = bytes((255 - r, 255 - g, 255 - b))
    base_row = px * width
    rows = []
    for y in range(height):
        x = (y * width) // height
        row = base_row[: 3 * x] + alt + base_row[3 * (x + 1) :]
        rows.append(b"\x00" + row)
    raw = b"".join(rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    out = _PNG_SIG + _chunk(b"IHDR", ihdr)
    if text:
        out += _chunk(b"tEXt", b"Comment\x00" + text.encode("latin-1", "replace"))
    return out + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def make_pdf(text: str = "Hello") -> bytes:
    """A minimal one-page PDF (US Letter) with a correct xref table."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 18 Tf 72 720 Td ({safe}) Tj ET".encode("latin-1", "replace")
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_text(text: str) -> bytes:
    return text.encode("utf-8")


def guess_type(filename: str, default: str = "application/octet-stream") -> str:
    t, _ = mimetypes.guess_type(filename)
    return t or default


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, GIF or JPEG, or None if not a recognised image."""
    if data[:8] == _PNG_SIG and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return w, h
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return w, h
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg_len = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h
            i += 2 + seg_len
    return None


def thumbnail_sizes(width: int, height: int) -> dict[str, tuple[int, int]]:
    """Thumbnail sizes as Airtable reports them for an image: small is 36 px high, large fits in
    512x512 (never upscaled), full is the original (capped at 3000)."""

    def fit(max_w: int, max_h: int, upscale: bool = False) -> tuple[int, int]:
        s = min(max_w / width, max_h / height)
        if not upscale:
            s = min(s, 1.0)
        return max(1, round(width * s)), max(1, round(height * s))

    small_h = 36
    small = (max(1, round(width * small_h / height)), small_h)
    return {"small": small, "large": fit(512, 512), "full": fit(3000, 3000)}
