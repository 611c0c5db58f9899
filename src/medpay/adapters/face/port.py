"""The face model port: find faces, place the 68 landmarks, compute an embedding. Services see only this; a model
(dlib's, or another one) is an adapter that implements it. Images are RGB ``uint8`` arrays (``images.decode``);
nothing here keeps one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from medpay.domain.face import Point


@dataclass(frozen=True)
class Face:
    """One detected face: its box (left, top, right, bottom, in pixels) and its 68 landmarks."""

    box: tuple[int, int, int, int]
    landmarks: tuple[Point, ...]
    handle: object = None  # the model's own object for the landmarks, handed back to ``embed``

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]


class FaceEncoder(Protocol):
    name: str  # recorded with each template: a template is only compared with probes of the same model
    dimensions: int
    threshold: float  # the model's usual same-person distance, the default before a region sets its own

    def faces(self, image: np.ndarray, *, upsample: int = 0) -> list[Face]:
        """Every face in the image, largest first, with its landmarks."""
        ...

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        """The embedding (``dimensions`` float32 values) of ``face`` in ``image``."""
        ...
