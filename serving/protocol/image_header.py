"""An encoded image's declared size, read from its header alone, before anything decodes its pixels.

A PNG of a few megabytes can declare 30000 x 30000 pixels: decoding it takes
gigabytes before any size check after the decode can refuse it. Pillow's
`Image.open` reads only the header (PNG's IHDR, JPEG's SOF, WebP's VP8
header) and leaves the pixels alone until `load()`, which is never called
here; its own decompression-bomb check refuses sizes past about 179 million
pixels, which are reported as such.
"""

import io
import re
import warnings
from typing import Optional, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

# What Pillow's own check refuses before the size is known (twice its warning threshold).
PILLOW_BOMB_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 0)
# The formats the service and `tf.io.decode_image` take; no other Pillow plugin is tried.
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


class DeclaredTooLargeError(Exception):
    """The header declares more pixels than Pillow will even describe; `pixels` says how many."""

    def __init__(self, pixels: int):
        super().__init__(f"the image declares {pixels} pixels")
        self.pixels = pixels


def declared_size(data: bytes, formats: Sequence[str] = FORMATS) -> Optional[Tuple[int, int]]:
    """(width, height) the image's header declares; None when no header Pillow knows can be read.

    Raises DeclaredTooLargeError past Pillow's decompression-bomb limit.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=list(formats)) as image:
                return image.size
        except Image.DecompressionBombError as e:
            counted = re.search(r"\((\d+) pixels\)", str(e))
            raise DeclaredTooLargeError(int(counted[1]) if counted else PILLOW_BOMB_PIXELS) from e
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            return None
