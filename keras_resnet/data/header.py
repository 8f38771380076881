"""What an image file's header says, read before anything is decoded: format, width, height.

A 1 MB PNG can declare 20000x20000 pixels, which the decoder would expand to 1.2 GB
of RGB (a "decompression bomb"). Every place that decodes files a user hands over
reads the header first and refuses an image above a pixel limit, naming the file:

* prediction, export parity and calibration folders
  (`keras_resnet.export.images.read_image`): `MAX_IMAGE_PIXELS`, Pillow's default
  limit (89,478,485 pixels, about 9459x9459);
* training and evaluation folders (`keras_resnet.data.check.quick_check` while a
  folder is listed) and ``kresnet data check``: `MAX_TRAIN_IMAGE_PIXELS` (40 Mpixel;
  every training image is decoded once per epoch or once into the cache, and the
  model sees it at 224x224 or less).

The environment variable ``KRESNET_MAX_IMAGE_PIXELS`` (an integer; ``0`` = no limit)
replaces both limits, e.g. for a folder of large satellite images.

Headers are parsed here, with no decoder: PNG's IHDR, the JPEG SOFn segment (found by
walking the segment lengths, so an EXIF block before it costs one seek), GIF's
logical screen and BMP's info header. Only these four formats are decoded anywhere
in kresnet (`keras_resnet.data.preprocess.decode_image`).

Example:
    >>> with open("cat.jpg", "rb") as f:
    ...     image_header(f)
    ('jpeg', 640, 480)
    >>> oversize_reason(("png", 20000, 20000), pixel_limit(MAX_IMAGE_PIXELS))
    'too large to decode safely: 20000x20000 = 400.0 Mpixel, above the limit of 89.5 Mpixel (...)'
"""

from __future__ import annotations

import io
import os
import struct

ENV_MAX_IMAGE_PIXELS = "KRESNET_MAX_IMAGE_PIXELS"
#: Pillow's ``Image.MAX_IMAGE_PIXELS``: the limit for images given to ``kresnet predict``.
MAX_IMAGE_PIXELS = 89_478_485
#: The limit for images of a training/evaluation folder and ``kresnet data check``.
MAX_TRAIN_IMAGE_PIXELS = 40_000_000

MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8, DAC CC) carry the frame size.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_MAX_JPEG_SEGMENTS = 1000
_PREFIX_BYTES = 8192  # one read: the whole header of nearly every file (a long EXIF block costs a second pass)


def sniff_format(head: bytes) -> str | None:
    """The image format from a file's first bytes ("jpeg", "png", "gif", "bmp"), or None."""
    for magic, fmt in MAGIC:
        if head.startswith(magic):
            return fmt
    return None


#: Default of the ``max_pixels`` arguments: the limit `pixel_limit` gives (None means no limit).
DEFAULT_LIMIT = object()


def resolve_limit(max_pixels, default: int) -> int | None:
    """``max_pixels``, or `pixel_limit` of ``default`` when it is `DEFAULT_LIMIT`."""
    return pixel_limit(default) if max_pixels is DEFAULT_LIMIT else max_pixels


def pixel_limit(default: int) -> int | None:
    """The pixel limit in force: ``$KRESNET_MAX_IMAGE_PIXELS`` when set, else ``default``.

    Args:
        default: `MAX_IMAGE_PIXELS` or `MAX_TRAIN_IMAGE_PIXELS`.

    Returns:
        The limit in pixels, or None for no limit (the variable set to 0).

    Raises:
        ValueError: the variable is set to something other than a non-negative integer.
    """
    raw = os.environ.get(ENV_MAX_IMAGE_PIXELS, "").strip().replace("_", "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"{ENV_MAX_IMAGE_PIXELS} must be a whole number of pixels (0 = no limit). "
            f"Received: {ENV_MAX_IMAGE_PIXELS}={os.environ.get(ENV_MAX_IMAGE_PIXELS)!r}"
        )
    return value or None


def image_header(source) -> tuple[str, int, int] | None:
    """``(format, width, height)`` from an image's header, without decoding it.

    Args:
        source: A binary file object positioned at the start of the image, or the bytes.

    Returns:
        The format ("jpeg", "png", "gif", "bmp") and declared size, or None when the
        data is not one of those formats or its header cannot be read (the decoder
        then reports it as undecodable).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _parse_header(io.BytesIO(source))
    start = source.tell()
    prefix = source.read(_PREFIX_BYTES)
    found = _parse_header(io.BytesIO(prefix))
    if found is None and len(prefix) == _PREFIX_BYTES and sniff_format(prefix) == "jpeg":
        source.seek(start)  # the frame header lies further in: walk the file itself
        found = _parse_header(source)
    return found


def _parse_header(f) -> tuple[str, int, int] | None:
    start = f.tell()
    head = f.read(26)
    fmt = sniff_format(head)
    try:
        if fmt == "png":
            if head[12:16] != b"IHDR":
                return None
            width, height = struct.unpack(">II", head[16:24])
        elif fmt == "gif":
            width, height = struct.unpack("<HH", head[6:10])
        elif fmt == "bmp":
            (dib_size,) = struct.unpack("<I", head[14:18])
            if dib_size == 12:  # BITMAPCOREHEADER: 16-bit sizes
                width, height = struct.unpack("<HH", head[18:22])
            else:
                width, height = struct.unpack("<ii", head[18:26])
        elif fmt == "jpeg":
            size = _jpeg_size(f, start)
            if size is None:
                return None
            width, height = size
        else:
            return None
    except struct.error:  # header shorter than its format's fixed fields
        return None
    return fmt, abs(int(width)), abs(int(height))


def _jpeg_size(f, start: int) -> tuple[int, int] | None:
    """(width, height) from the first SOFn segment, walking segment lengths from after SOI."""
    f.seek(start + 2)  # just after FF D8
    for _ in range(_MAX_JPEG_SEGMENTS):
        byte = f.read(1)
        while byte and byte != b"\xff":  # stray bytes between segments
            byte = f.read(1)
        while byte == b"\xff":  # fill bytes
            byte = f.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # standalone markers
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        length_bytes = f.read(2)
        if len(length_bytes) < 2:
            return None
        (length,) = struct.unpack(">H", length_bytes)
        if marker in _SOF_MARKERS:
            frame = f.read(5)
            if len(frame) < 5:
                return None
            _, height, width = struct.unpack(">BHH", frame)
            return width, height
        if length < 2:
            return None
        f.seek(length - 2, io.SEEK_CUR)
    return None


def oversize_reason(header: tuple[str, int, int] | None, limit: int | None) -> str | None:
    """Why an image is refused for its size (its header's pixel count above ``limit``), or None.

    Args:
        header: `image_header`'s result (None: nothing to check).
        limit: Pixels (None: no limit).

    Returns:
        ``"too large to decode safely: 20000x20000 = 400.0 Mpixel, above the limit of ..."``, or None.
    """
    if header is None or limit is None:
        return None
    _, width, height = header
    if width * height <= limit:
        return None
    return (
        f"too large to decode safely: {width}x{height} = {width * height / 1e6:.1f} Mpixel, above the limit of "
        f"{limit / 1e6:.1f} Mpixel (downscale it, or raise the limit with {ENV_MAX_IMAGE_PIXELS}=N)"
    )


def header_problem(path: str | os.PathLike, limit: int | None) -> str | None:
    """Read one file's header: why it must not be decoded (empty, not an image, too large), or None.

    Args:
        path: The image file.
        limit: Pixel limit (`pixel_limit`), None for none.

    Returns:
        A one-line reason, or None when the header is fine.

    Raises:
        OSError: the file cannot be opened or read.
    """
    with open(path, "rb") as f:
        head = f.read(16)
        if not head:
            return "empty file (0 bytes)"
        if sniff_format(head) is None:
            return f"not a JPEG/PNG/GIF/BMP image (starts with {head[:8]!r})"
        f.seek(0)
        return oversize_reason(image_header(f), limit)
