#!/usr/bin/env python3
"""Checks that a file is a valid 8-bit RGB PNG of the expected size, independently of the project's PNG writer.

usage: check-png.py FILE WIDTH HEIGHT
Verifies the signature, every chunk's CRC, IHDR (size, 8-bit RGB, no interlace), that the IDAT stream inflates to
exactly one filter byte plus WIDTH*3 bytes per row with valid filter types, and (after undoing the filters) that
the image has at least 16 distinct colours, as a grid of generated images does.
"""
import struct
import sys
import zlib


def fail(why):
    print(f"check-png: {sys.argv[1]}: {why}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    path, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        data = open(path, "rb").read()
    except OSError as e:
        fail(f"cannot read: {e}")
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail("not a PNG (bad signature)")
    pos, chunks = 8, []
    while pos < len(data):
        if pos + 12 > len(data):
            fail("truncated chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        if len(body) != length or zlib.crc32(kind + body) != crc:
            fail(f"bad CRC or length in chunk {kind!r}")
        chunks.append((kind, body))
        pos += 12 + length
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        fail("chunks must start with IHDR and end with IEND")
    w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if (w, h) != (width, height):
        fail(f"size {w}x{h}, expected {width}x{height}")
    if (depth, color, interlace) != (8, 2, 0):
        fail(f"bit depth {depth}, colour type {color}, interlace {interlace}; expected 8-bit RGB (2), not interlaced")
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = 1 + 3 * w
    if len(raw) != stride * h:
        fail(f"image data is {len(raw)} bytes, expected {stride * h}")
    pixels = unfilter(raw, w, h)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 3)}
    if len(colours) < 16:
        fail(f"only {len(colours)} distinct colours: not a grid of generated images")
    print(f"check-png: {path}: valid {w}x{h} RGB PNG, {len(colours)} distinct colours")


def unfilter(raw, w, h, bpp=3):
    """Undoes the PNG row filters (None, Sub, Up, Average, Paeth) and returns the RGB bytes."""
    stride, out, prev = w * bpp, bytearray(), bytearray(w * bpp)
    for r in range(h):
        kind, row = raw[r * (stride + 1)], bytearray(raw[r * (stride + 1) + 1:(r + 1) * (stride + 1)])
        if kind > 4:
            fail(f"invalid filter type {kind} in row {r}")
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + a) & 255
            elif kind == 2:
                row[i] = (row[i] + b) & 255
            elif kind == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row
        prev = row
    return bytes(out)


if __name__ == "__main__":
    main()
