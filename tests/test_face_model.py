"""The face model on real photographs: the port's dlib adapter, the quality gate, the landmark measures that
liveness reads (a painted blink, an opened mouth, a turned head move them), and ``medpay face eval``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from medpay.adapters.face import images
from medpay.adapters.face.dlib_encoder import default_encoder
from medpay.domain.face import (
    FrameMeasures,
    LivenessRules,
    check_liveness,
    distance,
    quality_refusal,
)
from tests.helpers_face import (
    PHOTOS,
    blurred,
    close_eyes,
    dark,
    jpeg,
    kiosk,
    open_mouth,
    photo,
    sequence,
    small,
    turn,
)

enc = default_encoder()


def embedding(image: np.ndarray) -> np.ndarray:
    faces = enc.faces(image) or enc.faces(image, upsample=1)
    return enc.embed(image, faces[0])


def measures(image: np.ndarray) -> FrameMeasures:
    faces = enc.faces(image) or enc.faces(image, upsample=1)
    assert faces, "no face found in the frame"
    return FrameMeasures.of(faces[0].landmarks)


def test_detects_one_face_with_68_landmarks_and_a_128_d_embedding():
    image = photo("obama.jpg")
    faces = enc.faces(image)
    assert len(faces) == 1 and len(faces[0].landmarks) == 68
    e = enc.embed(image, faces[0])
    assert e.shape == (128,) and e.dtype == np.float32
    assert quality_refusal(images.quality(image, faces)) is None


def test_same_person_close_other_person_far():
    a, b, c = embedding(photo("obama.jpg")), embedding(photo("obama2.jpg")), embedding(photo("obama3.jpg"))
    other = embedding(photo("biden.jpg"))
    for x, y in ((a, b), (a, c), (b, c)):
        assert distance(x, y) < enc.threshold
    for x in (a, b, c):
        assert distance(x, other) > enc.threshold


def test_group_photo_is_six_people():
    image = photo("t1.jpg")
    assert len(enc.faces(image, upsample=1)) == 6
    assert quality_refusal(images.quality(image, enc.faces(image))).endswith("exactly one person must be in the picture")


@pytest.mark.parametrize("degrade, reason", [
    (dark, "too dark"), (blurred, "blurred"), (small, "face too small")])
def test_quality_gate_names_what_is_wrong(degrade, reason):
    image = degrade(photo("obama.jpg"))
    faces = enc.faces(image) or enc.faces(image, upsample=1)
    assert quality_refusal(images.quality(image, faces)).startswith(reason)


def test_a_jpeg_copy_still_matches():
    image = photo("obama.jpg")
    copy = images.decode(jpeg(image, quality=40))
    assert quality_refusal(images.quality(copy, enc.faces(copy))) is None
    assert distance(embedding(image), embedding(copy)) < 0.2


def test_no_face_and_not_an_image():
    blank = np.full((480, 640, 3), 128, np.uint8)
    assert quality_refusal(images.quality(blank, enc.faces(blank))) == "no face found"
    with pytest.raises(images.ImageError, match="not an image"):
        images.decode(b"GIF89a but not really")
    with pytest.raises(images.ImageError, match="empty"):
        images.decode(b"")


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_a_painted_blink_moves_the_eye_landmarks(name):
    """The liveness measures are real: closing the eyes in the picture lowers the eye aspect ratio the 68
    landmarks give by well over the blink rule's 30 %."""
    image = kiosk(name)
    opened, closed = measures(image).ear, measures(close_eyes(image)).ear
    assert closed < opened * LivenessRules().blink_ratio, (opened, closed)


@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_mouth_and_head_turns_move_their_measures(name):
    image = kiosk(name)
    rest = measures(image)
    rules = LivenessRules()
    assert measures(open_mouth(image)).mar - rest.mar >= rules.mouth_delta
    assert rest.yaw - measures(turn(image, "left")).yaw >= rules.yaw_delta
    assert measures(turn(image, "right")).yaw - rest.yaw >= rules.yaw_delta


@pytest.mark.parametrize("name, challenge", [("obama.jpg", ("blink", "turn_left")), ("biden.jpg", ("open_mouth", "blink")),
                                             ("obama.jpg", ("turn_right", "open_mouth"))])
def test_liveness_on_frame_sequences_from_photos(name, challenge):
    frames = [measures(f) for f in sequence(name, challenge)]
    assert check_liveness(challenge, frames).ok
    reversed_ = check_liveness(tuple(reversed(challenge)), frames)
    assert not reversed_.ok and "out of order" in reversed_.reason
    still = [measures(kiosk("obama.jpg"))] * 8  # a photo held up: nothing moves
    assert check_liveness(challenge, still).reason == f"challenge: step 1 ({challenge[0]}) not seen"


def test_frame_hash_is_stable_for_a_resent_frame_and_differs_between_people():
    a = kiosk("obama.jpg")
    again = images.decode(jpeg(a, quality=85))
    box = enc.faces(a)[0].box
    bits = lambda x, y: bin(int(x, 16) ^ int(y, 16)).count("1")  # noqa: E731
    assert bits(images.frame_hash(a, box), images.frame_hash(again, box)) <= 4
    moved = sequence("obama.jpg", ("blink", "turn_left"), seed=3)
    assert bits(images.frame_hash(moved[0], box), images.frame_hash(moved[1], box)) > 4
    assert bits(images.frame_hash(a), images.frame_hash(photo("biden.jpg"))) > 60


def test_face_eval_command(tmp_path):
    """medpay face eval on a labelled folder: Obama's three photos, Biden, and the six faces of the group photo
    cropped into folders of their own."""
    for person, names in {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"]}.items():
        (tmp_path / person).mkdir()
        for n in names:
            (tmp_path / person / n).write_bytes((PHOTOS / n).read_bytes())
    group = photo("t1.jpg")
    for i, f in enumerate(enc.faces(group, upsample=1)):
        l, t, r, b = f.box
        pad = (r - l) // 2
        crop = group[max(0, t - pad):b + pad, max(0, l - pad):r + pad]
        (tmp_path / f"group{i}").mkdir()
        Image.fromarray(crop).save(tmp_path / f"group{i}" / "face.png")
    png = tmp_path / "det.png"
    out = subprocess.run([sys.executable, "-m", "medpay.cli", "face", "eval", str(tmp_path), "--png", str(png),
                          "--threshold", "0.5"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "10 photos of 8 people" in out.stdout
    assert "threshold 0.500: FMR 0.0000 (0/42 impostor pairs matched), FNMR 0.0000 (0/3 genuine pairs missed)" \
        in out.stdout
    assert "latency per photo (ms): n=10" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
