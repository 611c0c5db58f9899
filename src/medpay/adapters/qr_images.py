"""QR images: render a payload with segno (SVG for the page, PNG for download), decode a photo with zxing-cpp.

``decode`` reads the image as grayscale and tries, in order, until one pass finds a code:

1. the image as it is (zxing's local-average binariser, rotations, downscaling);
2. a 3×3 median blur (salt-and-pepper noise, JPEG ringing);
3. a 5×5 median blur (heavier noise);
4. autocontrast, then a local threshold (pixel darker than its neighbourhood mean → black) — uneven light,
   low contrast;
5. an unsharp mask — defocus blur of about half a module;
6. 2× upscale, Gaussian blur, unsharp mask — small codes (3–4 px per module) under sensor noise and JPEG.

Worst case (no code in a 1280×960 photo: every pass runs) is about half a second.

Exactly one QR code must be in the image: a pass that finds two or more refuses the image rather than guess
which one the patient meant.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Callable

import segno
import zxingcpp
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

ERROR_LEVEL = "m"
BORDER = 4  # quiet zone in modules, as ISO/IEC 18004 asks
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_IMAGE_PIXELS = 24_000_000  # a 6000×4000 phone photo; more is refused before decoding (decompression bombs)
MIN_SIDE = 21  # smaller than one version-1 symbol at one pixel per module
WORK_SIDE = 2048  # larger photos are scaled down first: a code filling 30 % of the frame keeps ~10 px/module
UPSCALE_MAX_SIDE = 1600  # the last pass doubles the image; above this the pixels are there already


class ImageError(ValueError):
    """The image is refused. ``field`` names the request input ("image")."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _qr(payload: str) -> segno.QRCode:
    if not payload:
        raise ValueError("empty payload")
    return segno.make_qr(payload, error=ERROR_LEVEL, boost_error=False)


def render_svg(payload: str, scale: int = 4, title: str | None = None) -> str:
    """An SVG document (no XML declaration, so it can be inlined in a page)."""
    buf = io.BytesIO()
    _qr(payload).save(buf, kind="svg", scale=scale, border=BORDER, xmldecl=False, title=title, svgclass="ecert-qr",
                      lineclass=None)
    return buf.getvalue().decode("utf-8")


def render_png(payload: str, scale: int = 8) -> bytes:
    buf = io.BytesIO()
    _qr(payload).save(buf, kind="png", scale=scale, border=BORDER)
    return buf.getvalue()


# -- decoding ----------------------------------------------------------------------------------------------


def _local_threshold(img: Image.Image) -> Image.Image:
    img = ImageOps.autocontrast(img, cutoff=1)
    radius = max(8, min(img.size) // 24)
    mean = img.filter(ImageFilter.BoxBlur(radius))
    darker = ImageChops.subtract(mean, img)  # mean − pixel, clamped at 0: how much darker than around it
    return darker.point(lambda v: 0 if v > 6 else 255)


def _upscale(img: Image.Image) -> Image.Image | None:
    if max(img.size) > UPSCALE_MAX_SIDE:
        return None
    big = img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC)
    return big.filter(ImageFilter.GaussianBlur(2)).filter(ImageFilter.UnsharpMask(radius=4, percent=250, threshold=0))


PASSES: list[tuple[str, Callable[[Image.Image], Image.Image | None]]] = [
    ("plain", lambda img: img),
    ("median3", lambda img: img.filter(ImageFilter.MedianFilter(3))),
    ("median5", lambda img: img.filter(ImageFilter.MedianFilter(5))),
    ("threshold", _local_threshold),
    ("sharpen", lambda img: img.filter(ImageFilter.UnsharpMask(radius=2, percent=250, threshold=0))),
    ("upscale", _upscale),
]


@dataclass(frozen=True)
class Decoded:
    text: str
    pass_name: str  # which pass of PASSES found it


def load_grayscale(image_bytes: bytes, field: str = "image") -> Image.Image:
    """The image as 8-bit grayscale, transparency flattened onto white, EXIF orientation applied."""
    if not isinstance(image_bytes, (bytes, bytearray, memoryview)):
        raise ImageError(field, "must be the bytes of a PNG, JPEG, GIF, BMP or WebP image")
    data = bytes(image_bytes)
    if not data:
        raise ImageError(field, "empty file")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(field, f"larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageError(field, f"{w}×{h} pixels is too large; send at most {MAX_IMAGE_PIXELS:,} pixels")
            img.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(field, "not an image (PNG, JPEG, GIF, BMP or WebP expected)") from None
    except (OSError, ValueError, SyntaxError, EOFError):
        raise ImageError(field, "the image file is truncated or corrupt") from None
    if min(img.size) < MIN_SIDE:
        raise ImageError(field, f"{img.size[0]}×{img.size[1]} pixels is too small to hold a QR code")
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # broken EXIF: the pixels are still usable
        pass
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat.alpha_composite(rgba)
        img = flat
    img = img.convert("L")
    if max(img.size) > WORK_SIDE:
        img.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
    return img


def _read(img: Image.Image) -> list[str]:
    found = zxingcpp.read_barcodes(img, formats=zxingcpp.BarcodeFormat.QRCode)
    return [b.text for b in found if b.valid]


def decode_detailed(image_bytes: bytes, field: str = "image") -> Decoded:
    img = load_grayscale(image_bytes, field)
    for name, prepare in PASSES:
        prepared = prepare(img)
        if prepared is None:
            continue
        texts = _read(prepared)
        if len(texts) > 1:
            raise ImageError(field, f"{len(texts)} codes in the image; show one")
        if texts:
            return Decoded(texts[0], name)
    raise ImageError(field, "no QR code found")


def decode(image_bytes: bytes, field: str = "image") -> str:
    """The text of the one QR code in the image; ``ImageError`` naming ``field`` otherwise."""
    return decode_detailed(image_bytes, field).text
