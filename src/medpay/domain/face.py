"""Face payment's pure rules: what the 68 landmarks say (eye and mouth aspect ratios, head yaw), whether a frame
sequence answered a liveness challenge in order, whether a face is good enough to enrol or verify, and how two
embeddings compare. No image, no model, no I/O: the adapters measure, these rules decide.

Landmarks follow the iBUG 300-W 68-point layout (dlib's ``shape_predictor_68_face_landmarks``): jaw 0–16, eyes
36–41 and 42–47, mouth 48–67, nose tip 30. Any model that gives these 68 points plugs in.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]

# -- measures -------------------------------------------------------------------------------------------------


def _d(a: Point, b: Point) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def eye_aspect_ratio(points: Sequence[Point]) -> float:
    """Mean eye aspect ratio of both eyes (Soukupová & Čech 2016): lid opening over eye width; ~0.3 open, ~0.1
    closed."""
    def one(e: Sequence[Point]) -> float:
        return (_d(e[1], e[5]) + _d(e[2], e[4])) / (2 * _d(e[0], e[3]) or 1.0)
    return (one(points[36:42]) + one(points[42:48])) / 2


def mouth_aspect_ratio(points: Sequence[Point]) -> float:
    """Inner-lip opening over mouth width: ~0 closed, ≥ 0.4 wide open."""
    return (_d(points[61], points[67]) + _d(points[62], points[66]) + _d(points[63], points[65])) / (
        3 * _d(points[60], points[64]) or 1.0)


def yaw(points: Sequence[Point]) -> float:
    """Head yaw as the nose tip's position between the jaw's sides, −1…1 in the image: 0 frontal; negative when the
    person turns to their left (the nose moves toward the image's right, seen from the camera)."""
    left, right = _d(points[30], points[2]), _d(points[30], points[14])
    return (right - left) / ((right + left) or 1.0)


@dataclass(frozen=True)
class FrameMeasures:
    """What liveness reads from one frame's landmarks."""

    ear: float
    mar: float
    yaw: float

    @classmethod
    def of(cls, points: Sequence[Point]) -> "FrameMeasures":
        return cls(eye_aspect_ratio(points), mouth_aspect_ratio(points), yaw(points))


# -- the liveness challenge -----------------------------------------------------------------------------------

ACTIONS = {  # action → (zh-CN, English) prompt
    "blink": ("请眨眼", "Blink"),
    "open_mouth": ("请张嘴", "Open your mouth"),
    "turn_left": ("请向左转头", "Turn your head to your left"),
    "turn_right": ("请向右转头", "Turn your head to your right"),
}


@dataclass(frozen=True)
class LivenessRules:
    """How far a measure must move from the sequence's resting value to count as the action (relative to the
    person's own resting face, so narrow eyes or a smile don't decide)."""

    blink_ratio: float = 0.7  # eye aspect ratio at most this share of resting, then back above reopen_ratio
    reopen_ratio: float = 0.85
    mouth_delta: float = 0.2  # mouth aspect ratio up by at least this
    yaw_delta: float = 0.15  # yaw moved at least this far, in the asked direction
    min_frames: int = 4
    max_frames: int = 40


def draw_challenge(rng: random.Random, steps: int = 2) -> tuple[str, ...]:
    """``steps`` different actions in a random order (one of ``len(ACTIONS)!/(len-steps)!`` sequences)."""
    return tuple(rng.sample(sorted(ACTIONS), steps))


@dataclass(frozen=True)
class LivenessResult:
    ok: bool
    reason: str = ""  # why not, naming the step: "step 2 (turn_left) not seen", "answered out of order" …


def _resting(frames: Sequence[FrameMeasures]) -> FrameMeasures:
    """The resting face: medians over the sequence (most frames are at rest between actions)."""
    def median(xs: list[float]) -> float:
        xs = sorted(xs)
        n = len(xs)
        return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2
    return FrameMeasures(median([f.ear for f in frames]), median([f.mar for f in frames]),
                         median([f.yaw for f in frames]))


def _acting(action: str, f: FrameMeasures, rest: FrameMeasures, rules: LivenessRules) -> bool:
    if action == "blink":
        return f.ear <= rest.ear * rules.blink_ratio
    if action == "open_mouth":
        return f.mar - rest.mar >= rules.mouth_delta
    if action == "turn_left":
        return rest.yaw - f.yaw >= rules.yaw_delta
    return f.yaw - rest.yaw >= rules.yaw_delta  # turn_right


def check_liveness(challenge: Sequence[str], frames: Sequence[FrameMeasures],
                   rules: LivenessRules = LivenessRules()) -> LivenessResult:
    """Did the frames perform ``challenge``'s actions, each one beginning and ending, in the asked order? An action
    of a later step seen before the earlier one is an answer out of order (a recording made for another
    challenge); a blink must reopen (closed eyes in every frame are a photo of a sleeping face, not a blink)."""
    if len(frames) < rules.min_frames:
        return LivenessResult(False, f"frames: at least {rules.min_frames} needed, got {len(frames)}")
    if len(frames) > rules.max_frames:
        return LivenessResult(False, f"frames: at most {rules.max_frames}, got {len(frames)}")
    rest = _resting(frames)
    i = 0
    for n, action in enumerate(challenge, 1):
        later = challenge[n:]
        start = None
        while i < len(frames):
            f = frames[i]
            if start is None and _acting(action, f, rest, rules):
                start = i
            elif start is None and any(_acting(a, f, rest, rules) for a in later):
                return LivenessResult(False, f"challenge: answered out of order ({later[0]} before {action})")
            elif start is not None and not _acting(action, f, rest, rules) and (
                    action != "blink" or f.ear >= rest.ear * rules.reopen_ratio):
                break  # the action ended
            i += 1
        if start is None:
            return LivenessResult(False, f"challenge: step {n} ({action}) not seen")
        if i >= len(frames) and action == "blink":
            return LivenessResult(False, f"challenge: step {n} (blink): the eyes never reopened")
    return LivenessResult(True)


# -- quality --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quality:
    """Measures of one detected face: its size, sharpness (variance of the Laplacian of its grey levels),
    brightness (mean grey level, 0–255) and yaw."""

    faces: int
    face_px: int
    sharpness: float
    brightness: float
    yaw: float


@dataclass(frozen=True)
class QualityRules:
    min_face_px: int = 80
    min_sharpness: float = 20.0
    min_brightness: float = 50.0
    max_brightness: float = 220.0
    max_abs_yaw: float = 0.35


def quality_refusal(q: Quality, rules: QualityRules = QualityRules()) -> str | None:
    """Why a face can't be used (the reason names the measure), or None."""
    if q.faces == 0:
        return "no face found"
    if q.faces > 1:
        return f"{q.faces} faces: exactly one person must be in the picture"
    if q.face_px < rules.min_face_px:
        return f"face too small: {q.face_px} px wide, at least {rules.min_face_px} (come closer)"
    if q.brightness < rules.min_brightness:
        return f"too dark: brightness {q.brightness:.0f}, at least {rules.min_brightness:.0f}"
    if q.brightness > rules.max_brightness:
        return f"too bright: brightness {q.brightness:.0f}, at most {rules.max_brightness:.0f}"
    if q.sharpness < rules.min_sharpness:
        return f"blurred: sharpness {q.sharpness:.0f}, at least {rules.min_sharpness:.0f}"
    if abs(q.yaw) > rules.max_abs_yaw:
        return f"head turned: yaw {q.yaw:+.2f}, at most ±{rules.max_abs_yaw:.2f} (look at the camera)"
    return None


# -- matching -------------------------------------------------------------------------------------------------


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance of two embeddings (dlib's: same person below ~0.6)."""
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def best_distance(probe: Sequence[float], templates: Sequence[Sequence[float]]) -> float:
    """The distance to the closest of a person's enrolled templates."""
    return min(distance(probe, t) for t in templates)


@dataclass(frozen=True)
class ErrorRates:
    """FMR/FNMR at a threshold, with the counts they come from (a handful of photos is not a measurement)."""

    threshold: float
    false_matches: int
    impostor_pairs: int
    false_non_matches: int
    genuine_pairs: int

    @property
    def fmr(self) -> float:
        return self.false_matches / self.impostor_pairs if self.impostor_pairs else math.nan

    @property
    def fnmr(self) -> float:
        return self.false_non_matches / self.genuine_pairs if self.genuine_pairs else math.nan


def error_rates(genuine: Sequence[float], impostor: Sequence[float], threshold: float) -> ErrorRates:
    """A pair matches when its distance is at most ``threshold``."""
    return ErrorRates(threshold, sum(d <= threshold for d in impostor), len(impostor),
                      sum(d > threshold for d in genuine), len(genuine))
