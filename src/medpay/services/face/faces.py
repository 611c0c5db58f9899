"""What enrolment and verification share: reading a face out of a photo through the model port, with every
refusal naming the field and the reason, and the face channel's errors."""

from __future__ import annotations

import numpy as np

from medpay.adapters.face import images
from medpay.adapters.face.port import Face, FaceEncoder
from medpay.domain.face import QualityRules, quality_refusal
from medpay.services.errors import Conflict, Forbidden, Invalid

PIN_DIGITS = 6


class FaceRejected(Invalid):
    """No face, several faces, too small, dark, blurred or turned; or not an image."""

    code = "face_quality"


class LivenessFailed(Forbidden):
    code = "liveness_failed"


class FramesReplayed(Forbidden):
    """Frames seen before, or a frozen sequence: a recording, not a live person."""

    code = "frames_replayed"


class NoMatch(Forbidden):
    """The face (or the ID digits) does not belong to the person the PIN selects, or the PIN selects nobody."""

    code = "face_mismatch"


class FaceLocked(Forbidden):
    code = "face_locked"


class NotEnrolled(Conflict):
    code = "face_not_enrolled"


def decode(data: bytes, field: str) -> np.ndarray:
    try:
        return images.decode(data, field)
    except images.ImageError as e:
        raise FaceRejected(e.field, e.message) from None


def find_faces(encoder: FaceEncoder, image: np.ndarray) -> list[Face]:
    """Faces at the frame's own scale first (a kiosk's faces are large); upsampled only when none is found, so that
    a small face is refused as small rather than missed. Measured (``images.quality``) only where it is judged."""
    return encoder.faces(image) or encoder.faces(image, upsample=1)


def usable_face(encoder: FaceEncoder, image: np.ndarray, field: str, rules: QualityRules = QualityRules(),
                faces: list[Face] | None = None) -> Face:
    """The one face of ``image`` if it passes the quality gate; ``FaceRejected`` naming ``field`` and why.
    ``faces``: those already found in it (not searched again)."""
    faces = find_faces(encoder, image) if faces is None else faces
    why = quality_refusal(images.quality(image, faces), rules)
    if why:
        raise FaceRejected(field, why)
    return faces[0]


def check_pin(pin: object, field: str = "pin") -> str:
    """A PIN of six digits that is not trivially guessed."""
    if not isinstance(pin, str) or len(pin) != PIN_DIGITS or not (pin.isascii() and pin.isdigit()):
        raise Invalid(field, f"must be {PIN_DIGITS} digits")
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    if len(set(pin)) == 1 or steps in ({1}, {-1}):
        raise Invalid(field, "too easy to guess (all the same digit, or a run like 123456): choose another")
    return pin


def pin_index(cipher, pin: str) -> str:
    """The keyed index a PIN is stored and looked up by (the index key: a dump alone can't be searched)."""
    return cipher.blind_index(pin, "face_pin")
