"""Region settings files beside the policies (``policies/regions/*.toml``): per-region operating settings that are
not fund rules — the face channel's match thresholds and limits. Checked at load; a wrong value names its key."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from medpay.money import parse_yuan

REGIONS_DIR = Path(__file__).resolve().parent.parent / "policies" / "regions"


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class FaceSettings:
    threshold: float = 0.5
    strict_threshold: float = 0.45
    strict_above_fen: int = 50_000
    max_failures: int = 5
    challenge_steps: int = 2
    session_ttl_s: int = 120
    session_tries: int = 3
    auth_ttl_s: int = 120

    def threshold_for(self, amount_fen: int) -> float:
        """Stricter above the region's amount."""
        return self.strict_threshold if amount_fen > self.strict_above_fen else self.threshold

    def bill_limit(self, distance: float) -> int | None:
        """The largest bill a match at ``distance`` may settle: the strict amount unless it met the strict
        threshold too (None: no limit). Whatever amount the terminal declared, the bill settled is what counts."""
        return None if distance <= self.strict_threshold else self.strict_above_fen


_LIMITS = {"threshold": (0.1, 1.2), "strict_threshold": (0.1, 1.2), "max_failures": (1, 100),
           "challenge_steps": (1, 4), "session_ttl_s": (10, 600), "session_tries": (1, 10), "auth_ttl_s": (10, 600)}


def _section(base: FaceSettings, doc: dict, where: str) -> FaceSettings:
    known = {f.name for f in fields(FaceSettings)} | {"strict_above_yuan"}
    values = {}
    for key, value in doc.items():
        if key not in known:
            raise SettingsError(f"{where}.{key}: unknown setting")
        if key == "strict_above_yuan":
            try:
                values["strict_above_fen"] = parse_yuan(value, key)
            except Exception as e:  # noqa: BLE001  (money's own error names the key)
                raise SettingsError(f"{where}.{key}: {e}") from None
            continue
        low, high = _LIMITS[key]
        kind = float if isinstance(low, float) else int
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or (
                kind is int and not isinstance(value, int)):
            raise SettingsError(f"{where}.{key}: must be {'a number' if kind is float else 'a whole number'} "
                                f"from {low} to {high}, got {value!r}")
        values[key] = kind(value)
    s = replace(base, **values)
    if s.strict_threshold > s.threshold:
        raise SettingsError(f"{where}.strict_threshold: must not be looser than threshold ({s.threshold})")
    return s


@dataclass(frozen=True)
class RegionFaceSettings:
    default: FaceSettings
    regions: dict[str, FaceSettings]

    def of(self, admdvs: str) -> FaceSettings:
        return self.regions.get(admdvs, self.default)


def parse_face_settings(doc: dict, name: str = "face.toml") -> RegionFaceSettings:
    default = _section(FaceSettings(), doc.get("default", {}), f"{name}: default")
    regions = {}
    for key, section in doc.items():
        if key == "default":
            continue
        if not (isinstance(section, dict) and len(key) == 6 and key.isdigit()):
            raise SettingsError(f"{name}: [{key}] must be a six-digit region code (医保区划) section")
        regions[key] = _section(default, section, f"{name}: [{key}]")
    return RegionFaceSettings(default, regions)


def load_face_settings(path: Path | None = None) -> RegionFaceSettings:
    path = path or REGIONS_DIR / "face.toml"
    try:
        return parse_face_settings(tomllib.loads(path.read_text(encoding="utf-8")), path.name)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: {e}") from None


@lru_cache(maxsize=1)
def builtin_face_settings() -> RegionFaceSettings:
    return load_face_settings()
