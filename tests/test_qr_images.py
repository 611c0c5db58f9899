"""Real QR images: render with segno, distort like a camera would, decode with zxing-cpp.

Every distorted image must decode to the exact payload. The ``RETRY_CASES`` are ones the first, unprocessed
read misses: they pin down that the median-blur, local-threshold and sharpen passes earn their keep.
"""

from __future__ import annotations

import io
import string

import numpy as np
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from medpay.adapters import qr_images
from medpay.adapters.qr_images import ImageError, decode, decode_detailed, render_png, render_svg
from medpay.domain.ecert_code import make_payload

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PAYLOAD = make_payload(KEY, "EC7K2M9QX4", "01301", 1767225600, nonce="WlD4KzVwT_8")  # deterministic


# -- distortions ----------------------------------------------------------------------------------------------


def gray(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("L")


def as_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def as_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("L").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def perspective(img: Image.Image, k: float = 0.12, fill: int = 255) -> Image.Image:
    """Seen from the side: the four corners pulled in by different amounts."""
    w, h = img.size
    src = [(0, 0), (w, 0), (w, h), (0, h)]
    dst = [(w * k, h * 0.03), (w * 0.98, h * k), (w * (1 - 0.6 * k), h * 0.98), (w * 0.03, h * (1 - 0.8 * k))]
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src):  # output point (x, y) samples input point (u, v)
        rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows, float), np.array(rhs, float)).tolist()
    return img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=fill)


def rotate(img: Image.Image, degrees: float, fill: int = 255) -> Image.Image:
    return img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


def gaussian_blur(img: Image.Image, radius: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius))


def salt_and_pepper(img: Image.Image, p: float, seed: int = 1) -> Image.Image:
    a = np.array(img).copy()
    m = np.random.default_rng(seed).random(a.shape)
    a[m < p / 2] = 0
    a[m > 1 - p / 2] = 255
    return Image.fromarray(a)


def gaussian_noise(img: Image.Image, sigma: float, seed: int = 2) -> Image.Image:
    a = np.array(img).astype(float) + np.random.default_rng(seed).normal(0, sigma, (img.height, img.width))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def uneven_light(img: Image.Image, darkest: float = 0.25) -> Image.Image:
    """Multiply by a gradient: one corner in shadow (×``darkest``), the opposite one fully lit."""
    h, w = img.height, img.width
    yy, xx = np.mgrid[0:h, 0:w]
    gain = darkest + (1 - darkest) * (0.6 * xx / w + 0.4 * yy / h)
    return Image.fromarray(np.clip(np.array(img) * gain, 0, 255).astype(np.uint8))


def low_contrast(img: Image.Image, lo: int = 110, hi: int = 150) -> Image.Image:
    return Image.fromarray((lo + (hi - lo) * (np.array(img) / 255.0)).astype(np.uint8))


def phone_photo(code: Image.Image, seed: int = 3, fraction: float = 0.30, quality: int = 40, *,
                noise: float = 6, defocus: float = 1.2, darkest: float = 0.45) -> bytes:
    """A 1280×960 photo: the code (``fraction`` of the frame's width) on a phone screen lying on a textured
    table, seen at an angle, a little rotated, defocused, noisy, unevenly lit, saved as a phone JPEG."""
    rng = np.random.default_rng(seed)
    w, h = 1280, 960
    coarse = Image.fromarray(np.clip(rng.normal(150, 30, (h // 16, w // 16)), 0, 255).astype(np.uint8))
    table = np.array(coarse.resize((w, h), Image.Resampling.BICUBIC), float)
    table += rng.normal(0, 12, (h, w)) + 20 * np.sin(np.arange(w) / 9.0)[None, :]  # grain and wood stripes
    frame = Image.fromarray(np.clip(table, 0, 255).astype(np.uint8))
    side = int(fraction * w)
    screen = Image.new("L", (side + 40, side + 120), 235)  # the phone's screen around the code
    screen.paste(code.resize((side, side), Image.Resampling.BILINEAR), (20, 60))
    shot = rotate(perspective(screen, 0.08), 7)
    outline = rotate(perspective(Image.new("L", screen.size, 255), 0.08, fill=0), 7, fill=0)
    frame.paste(shot, (int(w * 0.35), int(h * 0.2)), outline)
    frame = uneven_light(frame, darkest).filter(ImageFilter.GaussianBlur(defocus))
    return as_jpeg(gaussian_noise(frame, noise, seed), quality)


BASE = gray(render_png(PAYLOAD, scale=8))  # 8 px per module, as a phone screen shows it
SMALL = gray(render_png(PAYLOAD, scale=3))  # 3 px per module: a distant or small code
MID = gray(render_png(PAYLOAD, scale=4))
LARGE = gray(render_png(PAYLOAD, scale=6))

CASES = {
    "clean PNG": lambda: render_png(PAYLOAD),
    "perspective": lambda: as_png(perspective(BASE, 0.12)),
    "strong perspective": lambda: as_png(perspective(BASE, 0.22)),
    "rotated 17°": lambda: as_png(rotate(BASE, 17)),
    "rotated 90°": lambda: as_png(rotate(BASE, 90)),
    "rotated 200°": lambda: as_png(rotate(BASE, 200)),
    "gaussian blur r=3": lambda: as_png(gaussian_blur(BASE, 3)),
    "salt and pepper 10%": lambda: as_png(salt_and_pepper(BASE, 0.10)),
    "gaussian noise σ=70": lambda: as_png(gaussian_noise(BASE, 70)),
    "JPEG q=20": lambda: as_jpeg(BASE, 20),
    "JPEG q=30 small": lambda: as_jpeg(SMALL, 30),
    "JPEG q=40 noisy": lambda: as_jpeg(gaussian_noise(BASE, 40), 40),
    "uneven light": lambda: as_png(uneven_light(BASE, 0.15)),
    "small scale (2 px/module)": lambda: as_png(gray(render_png(PAYLOAD, scale=2))),
    "phone photo, 30% of 1280×960": lambda: phone_photo(BASE),
    "phone photo, 25%, JPEG q=25": lambda: phone_photo(BASE, seed=5, fraction=0.25, quality=25),
    "perspective + blur + noise + JPEG": lambda: as_jpeg(gaussian_noise(gaussian_blur(perspective(BASE), 1.5), 25), 30),
}

# distortions the plain read misses, with the pass that recovers them
RETRY_CASES = {
    "salt and pepper 20%, 3 px/module": (lambda: as_png(salt_and_pepper(SMALL, 0.20)), "median3"),
    "gaussian noise σ=90, 4 px/module": (lambda: as_png(gaussian_noise(MID, 90)), "median3"),
    "salt and pepper 40%, 6 px/module": (lambda: as_png(salt_and_pepper(LARGE, 0.40)), "median5"),
    "uneven light on low contrast": (lambda: as_png(uneven_light(low_contrast(MID), 0.3)), "threshold"),
    "defocus r=2, 4 px/module": (lambda: as_png(gaussian_blur(MID, 2)), "sharpen"),
    "phone photo 30%, sensor noise σ=40": (lambda: phone_photo(BASE, noise=40, quality=35), "median3"),
    "phone photo 30%, σ=60, dim corner": (lambda: phone_photo(BASE, noise=60, darkest=0.15, quality=35), "median5"),
    "phone photo 25%, σ=40": (lambda: phone_photo(BASE, fraction=0.25, noise=40, quality=35), "upscale"),
    "phone photo 20%, σ=40": (lambda: phone_photo(BASE, fraction=0.20, noise=40, quality=35), "upscale"),
    "phone photo 30%, σ=20, defocus r=2.5": (lambda: phone_photo(BASE, noise=20, defocus=2.5, quality=35), "upscale"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_distorted_images_decode_to_the_exact_payload(name: str) -> None:
    assert decode(CASES[name]()) == PAYLOAD


@pytest.mark.parametrize("name", list(RETRY_CASES))
def test_retry_passes_recover_what_the_plain_read_misses(name: str) -> None:
    make, expected_pass = RETRY_CASES[name]
    image = make()
    plain = zxingcpp.read_barcodes(qr_images.load_grayscale(image), formats=zxingcpp.BarcodeFormat.QRCode)
    assert [b.text for b in plain if b.valid] == []  # the first pass alone finds nothing
    result = decode_detailed(image)
    assert result.text == PAYLOAD
    assert result.pass_name == expected_pass


def test_render_svg_is_an_inline_svg_document() -> None:
    svg = render_svg(PAYLOAD, title="医保电子凭证")
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert "<?xml" not in svg and "医保电子凭证" in svg


def test_payload_fits_a_version_10_code_at_level_m() -> None:
    import segno

    qr = segno.make_qr(PAYLOAD, error="m", boost_error=False)
    assert (len(PAYLOAD), qr.version, qr.error) == (213, 10, "M")
    assert gray(render_png(PAYLOAD, scale=1)).size == (57 + 8, 57 + 8)  # quiet zone of 4 modules


def test_transparent_png_decodes_on_white() -> None:
    rgba = Image.new("RGBA", BASE.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(BASE, lambda v: 255 - v))  # black modules opaque, background transparent
    assert decode(as_png(rgba)) == PAYLOAD


def test_blank_image_has_no_code() -> None:
    with pytest.raises(ImageError) as e:
        decode(as_png(Image.new("L", (1280, 960), 255)))
    assert (e.value.field, e.value.message) == ("image", "no QR code found")


def test_textured_photo_without_a_code_has_no_code() -> None:
    blank = Image.new("L", BASE.size, 255)
    with pytest.raises(ImageError, match="no QR code found"):
        decode(phone_photo(blank))


def test_two_codes_side_by_side_are_refused() -> None:
    other = gray(render_png(make_payload(KEY, "EC0000000A", "01101", 1767225600), scale=8))
    both = Image.new("L", (BASE.width + other.width, max(BASE.height, other.height)), 255)
    both.paste(BASE, (0, 0))
    both.paste(other, (BASE.width, 0))
    with pytest.raises(ImageError) as e:
        decode(as_png(both))
    assert (e.value.field, e.value.message) == ("image", "2 codes in the image; show one")


def test_the_same_code_twice_is_refused_too() -> None:
    both = Image.new("L", (BASE.width * 2, BASE.height), 255)
    both.paste(BASE, (0, 0))
    both.paste(BASE, (BASE.width, 0))
    with pytest.raises(ImageError, match="2 codes"):
        decode(as_png(both))


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"MPEC1.not-an-image", "not an image"),
    (b"%PDF-1.7\n" + b"0" * 100, "not an image"),
    (render_png(PAYLOAD)[:300], "truncated or corrupt"),
    (as_png(Image.new("L", (10, 10), 255)), "too small"),
])
def test_non_images_are_refused_naming_the_field(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message) as e:
        decode(data)
    assert e.value.field == "image"


def test_field_name_is_the_callers() -> None:
    with pytest.raises(ImageError) as e:
        decode(b"nope", field="photo")
    assert e.value.field == "photo" and str(e.value).startswith("photo: ")


def test_huge_dimensions_are_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("1", (6000, 5000), 1).save(buf, "PNG")  # 30 Mpx, compresses to a few kB
    with pytest.raises(ImageError, match="too large"):
        decode(buf.getvalue())


def test_large_photo_is_scaled_down_and_decodes() -> None:
    big = Image.new("L", (4000, 3000), 200)
    big.paste(BASE.resize((1200, 1200), Image.Resampling.NEAREST), (1400, 900))
    assert decode(as_jpeg(big, 70)) == PAYLOAD


_PAYLOAD_CHARS = string.ascii_letters + string.digits + "-_.~:/+=%"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.text(alphabet=_PAYLOAD_CHARS, min_size=1, max_size=300),
       scale=st.integers(min_value=2, max_value=6))
def test_render_decode_round_trip(payload: str, scale: int) -> None:
    assert decode(render_png(payload, scale=scale)) == payload
