"""Hostile and careless input files written by the tests: a decompression-bomb PNG, a non-UTF-8 file name."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb_png(path: str | os.PathLike, side: int = 20000) -> Path:
    """A valid 1-bit grayscale PNG of ``side`` x ``side`` black pixels: about 50 KB on disk for 20000.

    Decoded to RGB uint8 it would take ``3 * side**2`` bytes (1.2 GB for 20000): what a
    decompression bomb is. Written with zlib row by row, never holding the image in memory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0 + packed 1-bit pixels
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(compressor.compress(row * (side % 1000)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # width, height, bit depth 1, grayscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))
    return path


def write_non_utf8_name(folder: str | os.PathLike, data: bytes, stem: bytes = b"bad\xff\xfe", suffix: bytes = b".png") -> str:
    """Write ``data`` to a file whose name has bytes that are not UTF-8; return its path as Python lists it (str)."""
    folder = os.fsencode(os.fspath(folder))
    os.makedirs(folder, exist_ok=True)
    raw = os.path.join(folder, stem + suffix)
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return os.fsdecode(raw)


def png_bytes(colour=(10, 20, 30), size: int = 8) -> bytes:
    """A small solid-colour PNG's bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, "PNG")
    return buffer.getvalue()
