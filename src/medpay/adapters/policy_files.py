"""Policy files on disk (TOML) → validated Policy objects."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from medpay.domain.policy import Policy, PolicyError, parse_policy

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "policies"


def load_policy_file(path: str | Path) -> Policy:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise PolicyError(str(path), "(file)", f"cannot be read: {e.strerror}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise PolicyError(str(path), "(file)", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(str(path), "(syntax)", str(e)) from None
    return parse_policy(doc, path.name)


def load_policy_dir(folder: str | Path) -> list[Policy]:
    policies = [load_policy_file(p) for p in sorted(Path(folder).glob("*.toml"))]
    seen: dict[str, str] = {}
    for p in policies:
        if p.policy_id in seen:
            raise PolicyError(p.policy_id, "policy.version", f"defined twice ({seen[p.policy_id]})")
        seen[p.policy_id] = p.policy_id
    return policies


@lru_cache(maxsize=8)
def builtin_policies() -> tuple[Policy, ...]:
    return tuple(load_policy_dir(BUILTIN_DIR))
