"""A PNG's pixels read with zlib alone (8-bit greyscale, RGB or RGBA, not interlaced:
what Chromium's screenshots are), for checking that a screenshot is not blank."""

from __future__ import annotations

import struct
import zlib
from statistics import pvariance

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, channels, unfiltered rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and color in CHANNELS, (depth, color, interlace)
    bpp = CHANNELS[color]
    raw = zlib.decompress(idat)
    stride = width * bpp
    out: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        out.append(bytes(line))
        prev = line
    return width, bpp, out


def grey_variance(data: bytes) -> float:
    """Variance of the first channel over every pixel: 0 for a blank page."""
    _, bpp, lines = rows(data)
    return pvariance([v for line in lines for v in line[::bpp]])
