"""The face services built in process on a seeded platform, with a key file of their own and a face terminal."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medpay.adapters.face.dlib_encoder import default_encoder
from medpay.adapters.face.vault import TemplateVault
from medpay.adapters.keyring import DATA_FILE, create_key_file, load_keyring
from medpay.adapters.platform_keys import public_key_hex
from medpay.adapters.region_settings import builtin_face_settings
from medpay.services import demo
from medpay.services.face.enrolment import FaceEnrolment
from medpay.services.face.verification import FaceVerification
from medpay.services.qr.ecert import EcertService

H1 = demo.INSTITUTIONS[0][0]


class Fixed:
    """A challenge chosen by the test: ``draw_challenge`` samples from it."""

    def __init__(self, *actions: str):
        self.actions = list(actions)

    def sample(self, population, k):  # noqa: ARG002  (random.Random's signature)
        return self.actions[:k]


def face_services(p, tmp: Path):
    keys = tmp / "data.key"
    create_key_file(DATA_FILE, keys)
    vault = TemplateVault(lambda: load_keyring({DATA_FILE: keys}).of("face"))
    signing = Ed25519PrivateKey.generate()
    enrolment = FaceEnrolment(p.factory, p.cipher, vault, default_encoder())
    verification = FaceVerification(p.factory, p.cipher, vault, default_encoder(), p.persons, signing,
                                     builtin_face_settings(), rng=Fixed("blink", "turn_left"))
    ecert = EcertService(p.factory, p.cipher, signing, p.persons)
    terminal = ecert.register_terminal(H1, public_key_hex(Ed25519PrivateKey.generate()), "自助机1", kind="face")
    return enrolment, verification, terminal, keys
