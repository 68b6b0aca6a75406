"""Client icons: verified with Pillow, bounded, re-encoded as PNG so no uploaded byte is served back."""
from __future__ import annotations

import io
import warnings

from ..errors import InvalidInput

ICON_MAX_BYTES = 256 * 1024
ICON_MAX_SOURCE_PIXELS = 4096 * 4096
ICON_SIZE = 256  # served icons fit in ICON_SIZE x ICON_SIZE
ACCEPTED_FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
ICON_CONTENT_TYPE = "image/png"


def normalise_icon(data: bytes) -> bytes:
    """Return the icon re-encoded as PNG, or raise InvalidInput saying what is wrong with it."""
    # Pillow is imported here, on the first icon: a command or a worker that handles none never loads it.
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InvalidInput("The icon file is empty.", field="icon")
    if len(data) > ICON_MAX_BYTES:
        raise InvalidInput(f"The icon must be at most {ICON_MAX_BYTES // 1024} KiB.", field="icon")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype", b"<html")) or b"<svg" in head:
        raise InvalidInput("SVG and other markup are not accepted as icons: use PNG, JPEG, GIF or WebP.", field="icon")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                fmt = probe.format
                width, height = probe.size
                if fmt not in ACCEPTED_FORMATS:
                    raise InvalidInput("The icon must be a PNG, JPEG, GIF or WebP image.", field="icon")
                if width * height > ICON_MAX_SOURCE_PIXELS or width < 1 or height < 1:
                    raise InvalidInput("The icon must be at most 4096 x 4096 pixels.", field="icon")
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.seek(0)
                image.load()
                converted = image.convert("RGBA")
                converted.thumbnail((ICON_SIZE, ICON_SIZE))
                out = io.BytesIO()
                converted.save(out, format="PNG", optimize=True)
                return out.getvalue()
    except InvalidInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidInput("The icon is not a readable PNG, JPEG, GIF or WebP image.", field="icon") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise InvalidInput("The icon image is damaged or truncated.", field="icon") from None
