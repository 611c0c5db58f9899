"""Images as the face services see them: decoded from the bytes a caller sent (PNG/JPEG/…; anything else is a
refusal naming the field), at most ``MAX_SIDE`` pixels on the long side, RGB. And what every model's face gets
measured by: sharpness, brightness, a perceptual hash. Nothing here writes an image anywhere."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from medpay.adapters.face.port import Face
from medpay.domain.face import Quality, yaw

MAX_SIDE = 640  # a kiosk camera frame; larger photos are scaled down (faces stay far above the minimum size)
MAX_PIXELS = 40_000_000  # decompression bombs: a small file that decodes into gigabytes is refused


class ImageError(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def decode(data: bytes, field: str = "image", max_side: int = MAX_SIDE) -> np.ndarray:
    """RGB ``uint8`` array of the image in ``data``, scaled to at most ``max_side`` on its long side."""
    if not data:
        raise ImageError(field, "empty: send a photo (JPEG or PNG)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ImageError(field, f"{im.width}×{im.height} pixels is too large a picture")
                im = im.convert("RGB")
                if max(im.size) > max_side:
                    s = max_side / max(im.size)
                    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
                return np.asarray(im)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, SyntaxError):
        raise ImageError(field, "not an image that can be read (send JPEG or PNG)") from None


def grey(image: np.ndarray) -> np.ndarray:
    return image[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _crop(a: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The box's pixels (clipped to the image), grey or colour: crop first, so only the face is converted."""
    h, w = a.shape[:2]
    left, top, right, bottom = box
    return a[max(0, top):min(h, bottom), max(0, left):min(w, right)]


def sharpness(g: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for a blurred face."""
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = (g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1])
    return float(lap.var())


def quality(image: np.ndarray, faces: list[Face]) -> Quality:
    """The quality measures of the largest face (and how many there are)."""
    if not faces:
        return Quality(0, 0, 0.0, 0.0, 0.0)
    face = faces[0]
    region = grey(_crop(image, face.box))
    return Quality(len(faces), face.width, sharpness(region), float(region.mean()) if region.size else 0.0,
                   yaw(face.landmarks))


def frame_hash(image: np.ndarray, box: tuple[int, int, int, int] | None = None) -> str:
    """A 256-bit difference hash of the face region (16×16 gradient signs of its grey levels scaled to 17×16), as
    64 hex digits. The same frame sent again — re-encoded — hashes the same; a live camera's next frame does not
    (a person never holds still to the pixel). Frames are remembered by this, never as images."""
    g = grey(image if box is None else _crop(image, box))
    small = Image.fromarray(g.astype(np.uint8)).resize((17, 16), Image.BILINEAR)
    a = np.asarray(small, dtype=np.int16)
    bits = (a[:, 1:] > a[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2).to_bytes(32, "big").hex()
