"""A fake camera for Chromium (``--use-file-for-fake-video-capture``): a Y4M video of a test photo's face, framed as
a kiosk camera sees it, performing a challenge — rest, the first action, rest, the second …, rest — every frame
moved a little and with fresh sensor noise (``tests/helpers_face``), as a camera films a live person.

Chromium plays the file from its first frame when the page opens the camera and loops it; the page films for
about as long as the video, so it sees the actions in order."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from medpay.adapters.region_settings import builtin_face_settings
from medpay.domain.face import draw_challenge
from tests.helpers_face import ACT, jitter, kiosk, noisy

FPS = 10
REST_FRAMES = 10  # 1 s at rest before the first action, and between actions
ACTION_FRAMES = 6  # each action held 0.6 s
END_FRAMES = 14


def challenges(seed: str, admdvs: str, count: int) -> list[tuple[str, ...]]:
    """The first ``count`` challenges a server started with ``MEDPAY_FACE_CHALLENGE_SEED=seed`` asks, in order
    (its sessions draw them one after the other from one seeded generator)."""
    rng = random.Random(seed)
    steps = builtin_face_settings().of(admdvs).challenge_steps
    return [draw_challenge(rng, steps) for _ in range(count)]


def frames(name: str, challenge: tuple[str, ...], seed: int) -> list[np.ndarray]:
    base = kiosk(name)
    rng = np.random.default_rng(seed)
    acted = {a: ACT[a](base) for a in challenge}
    plan = [base] * REST_FRAMES
    for i, action in enumerate(challenge):
        plan += [acted[action]] * ACTION_FRAMES + [base] * (REST_FRAMES if i + 1 < len(challenge) else END_FRAMES)
    return [noisy(jitter(f, rng), rng) for f in plan]


def i420(rgb: np.ndarray) -> bytes:
    """One frame as planar Y, then U and V subsampled 2×2 (BT.601, full range as ``C420jpeg`` says)."""
    f = rgb.astype(np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = (b - y) * 0.564 + 128
    v = (r - y) * 0.713 + 128
    h, w = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    return b"".join(np.clip(p, 0, 255).astype(np.uint8).tobytes() for p in (y, sub(u), sub(v)))


def write_y4m(path: Path, video: list[np.ndarray], fps: int = FPS) -> Path:
    h, w = video[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in video:
            out.write(b"FRAME\n" + i420(frame))
    return path


def challenge_video(path: Path, name: str, challenge: tuple[str, ...], seed: int) -> Path:
    return write_y4m(path, frames(name, challenge, seed))
