"""Frames made from the real test photos (``tests/data/faces``): a painted blink, an opened mouth, a head turned
by a warp, degraded copies, camera noise, and whole challenge sequences as JPEG bytes, as a kiosk camera would
send them. Landmarks for painting come from the real model."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from medpay.adapters.face import images
from medpay.adapters.face.dlib_encoder import default_encoder

PHOTOS = Path(__file__).parent / "data" / "faces"


@lru_cache(maxsize=16)
def photo(name: str) -> np.ndarray:
    """A test photo as the platform sees it (≤ 640 px)."""
    return images.decode((PHOTOS / name).read_bytes())


@lru_cache(maxsize=16)
def kiosk(name: str) -> np.ndarray:
    """The photo framed as a kiosk camera sees a patient: 640×480, the face about a third of the width."""
    image = photo(name)
    faces = default_encoder().faces(image) or default_encoder().faces(image, upsample=1)
    left, top, right, bottom = faces[0].box
    w, cx, cy = right - left, (left + right) / 2, (top + bottom) / 2
    box = (int(cx - w * 1.6), int(cy - w * 1.2), int(cx + w * 1.6), int(cy + w * 1.2))
    return np.asarray(Image.fromarray(image).crop(box).resize((640, 480), Image.BICUBIC))


def photo_bytes(name: str) -> bytes:
    return (PHOTOS / name).read_bytes()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def landmarks(image: np.ndarray) -> np.ndarray:
    faces = default_encoder().faces(image) or default_encoder().faces(image, upsample=1)
    return np.array(faces[0].landmarks)


def close_eyes(image: np.ndarray) -> np.ndarray:
    """Eyes painted shut: each eye covered with the skin of its lid, a dark lash line along the lower lid."""
    p = landmarks(image)
    im = Image.fromarray(image.copy())
    d = ImageDraw.Draw(im)
    for eye in (p[36:42], p[42:48]):
        c = eye.mean(0)
        x0, y0 = eye.min(0)
        x1, y1 = eye.max(0)
        h = max(y1 - y0, 2)
        band = image[int(y0 - 1.3 * h):int(y0 - 0.5 * h), int(x0):int(x1)].reshape(-1, 3)
        d.polygon([tuple(c + (q - c) * np.array([1.15, 1.6])) for q in eye],
                  fill=tuple(int(v) for v in np.median(band, axis=0)))
        left, right = eye[0], eye[3]
        low = (eye[4] + eye[5]) / 2
        mid = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2 * 0.7 + low[1] * 0.3)
        d.line([tuple(left), mid, tuple(right)], fill=(35, 25, 25), width=max(2, round(h * 0.5)), joint="curve")
    return np.asarray(im.filter(ImageFilter.GaussianBlur(1.0)))


def open_mouth(image: np.ndarray) -> np.ndarray:
    p = landmarks(image)
    im = Image.fromarray(image.copy())
    mouth = p[48:60]
    x0, y0 = mouth.min(0)
    x1, y1 = mouth.max(0)
    h = y1 - y0
    ImageDraw.Draw(im).ellipse([x0 + (x1 - x0) * 0.15, (y0 + y1) / 2 - h * 0.2, x1 - (x1 - x0) * 0.15, y1 + h * 0.9],
                               fill=(50, 20, 20))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(1)))


def turn(image: np.ndarray, to: str) -> np.ndarray:
    """The head turned to the person's ``left`` or ``right``: the far side of the face squeezed toward the nose."""
    p = landmarks(image)
    cx = p[30][0]
    xs = np.arange(image.shape[1])
    side = 1 if to == "left" else -1  # the person's left turn shows their right cheek less: image right squeezed
    src = np.where((xs - cx) * side > 0, cx + (xs - cx) / (1 - 0.45), xs)
    return np.ascontiguousarray(image[:, np.clip(src, 0, image.shape[1] - 1).astype(int)])


ACT = {"blink": close_eyes, "open_mouth": open_mouth, "turn_left": lambda i: turn(i, "left"),
       "turn_right": lambda i: turn(i, "right")}


def noisy(image: np.ndarray, rng: np.random.Generator, sigma: float = 2.0) -> np.ndarray:
    """A camera's sensor noise: no two live frames are the same."""
    return np.clip(image.astype(np.float32) + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A live person's micro-movements: a shift of a few pixels and a slight change of scale."""
    dx, dy = rng.integers(-3, 4, 2)
    s = 1 + rng.uniform(-0.01, 0.01)
    im = Image.fromarray(image)
    return np.asarray(im.transform(im.size, Image.AFFINE, (s, 0, int(dx), 0, s, int(dy)), resample=Image.BILINEAR))


def another_visit(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same person on another day: the head tilted a few degrees, the light from another side. Frames of two
    visits differ as a live camera's do (their perceptual hashes far apart), so the replay check lets them pass."""
    tilted = np.asarray(Image.fromarray(image).rotate(rng.uniform(-6, 6), resample=Image.BILINEAR), np.float32)
    h, w = tilted.shape[:2]
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.25, 0.45)
    ys, xs = np.mgrid[0:h, 0:w]
    light = 1 + strength * ((xs - w / 2) * np.cos(angle) + (ys - h / 2) * np.sin(angle)) / (w / 2)
    return np.clip(tilted * light[..., None], 0, 255).astype(np.uint8)


def sequence(name: str, challenge: tuple[str, ...], seed: int = 0, rest: int = 3,
             base: np.ndarray | None = None) -> list[np.ndarray]:
    """Kiosk frames answering ``challenge`` with the face of ``name`` (or the kiosk picture ``base``): rest, action
    (two frames), rest, … — each frame moved a little and with fresh sensor noise, as a camera films a live
    person."""
    base = kiosk(name) if base is None else base
    rng = np.random.default_rng(seed)
    acted = {a: ACT[a](base) for a in challenge}
    frames = [base] * rest
    for a in challenge:
        frames += [acted[a]] * 2 + [base] * rest
    return [noisy(jitter(f, rng), rng) for f in frames]


def sequence_jpegs(name: str, challenge: tuple[str, ...], seed: int = 0,
                   base: np.ndarray | None = None) -> list[bytes]:
    return [jpeg(f) for f in sequence(name, challenge, seed, base=base)]


def dark(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float32) * 0.2).astype(np.uint8)


def blurred(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(6)))


def small(image: np.ndarray, width: int = 120) -> np.ndarray:
    s = width / image.shape[1]
    return np.asarray(Image.fromarray(image).resize((width, round(image.shape[0] * s))))
