"""dlib's face model: the HOG frontal face detector, the 68-point shape predictor (iBUG 300-W) and the ResNet
encoder (128-d, 99.38 % on LFW; same person below 0.6), with the model files of PyPI's
``face-recognition-models`` — shipped with the package, nothing is downloaded at run time."""

from __future__ import annotations

import threading
from functools import lru_cache

import numpy as np

from medpay.adapters.face.port import Face


@lru_cache(maxsize=1)
def _models():
    import dlib
    import face_recognition_models as files

    return (dlib.get_frontal_face_detector(), dlib.shape_predictor(files.pose_predictor_model_location()),
            dlib.face_recognition_model_v1(files.face_recognition_model_location()), dlib.rectangle)


class DlibEncoder:
    name = "dlib-resnet-v1"
    dimensions = 128
    threshold = 0.6

    def __init__(self) -> None:
        self._lock = threading.Lock()  # dlib's objects are not documented as thread-safe: one call at a time

    def faces(self, image: np.ndarray, *, upsample: int = 0) -> list[Face]:
        detector, predictor, _, _ = _models()
        image = _contiguous(image)
        with self._lock:
            found = sorted(detector(image, upsample), key=lambda r: -r.width() * r.height())
            out = []
            for r in found:
                shape = predictor(image, r)
                out.append(Face((r.left(), r.top(), r.right(), r.bottom()),
                                tuple((float(p.x), float(p.y)) for p in shape.parts()), shape))
        return out

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray:
        _, predictor, encoder, rectangle = _models()
        image = _contiguous(image)
        with self._lock:
            shape = face.handle if face.handle is not None else predictor(image, rectangle(*face.box))
            return np.asarray(encoder.compute_face_descriptor(image, shape), dtype=np.float32)


def _contiguous(image: np.ndarray) -> np.ndarray:
    """dlib reads an image as one C-ordered block of uint8 RGB; a view (a crop, a column remap) is copied first, as
    dlib builds do not all honour numpy's strides alike."""
    return np.ascontiguousarray(image, dtype=np.uint8)


@lru_cache(maxsize=1)
def default_encoder() -> DlibEncoder:
    return DlibEncoder()
