"""URLs of the institution interface: is a path a transaction of it, and which one.

A HIS reaches a transaction in one of three ways, all accepted:

- a single endpoint (``CALL_SERVICE``, or another listed in ``nhsa_paths.toml``): the body's ``infno`` decides;
- a named path per transaction, as regions publish them (``nhsa_paths.toml``, each with its source);
- a base URL with the infno appended (``…/callService/1101``, ``/hsa/hgs/1101``): anywhere under ``/fsi/``, or
  under a base path of ``MEDPAY_INSTITUTION_BASE_PATHS``. A configured base may also stand in front of a single
  endpoint or a named path (河北's gateway: ``/ebus/rio_fsi`` + ``/fsi/api/…``).

``InstitutionPaths.route`` is the one definition of "an institution-interface path, and for which transactions":
the transport guard (body limit, authentication before the body), the error shapes (an envelope) and the router
all ask it. Everything under ``/fsi/`` belongs to the interface's door, known or not (an unknown path there is
answered with an envelope); under a configured base only what ``route`` resolves does.

No project imports: the HIS client uses this table too.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PREFIX = "/fsi/"
INFNO = re.compile(r"[0-9]{4}[A-Z]?")
BASE_PATHS_ENV = "MEDPAY_INSTITUTION_BASE_PATHS"
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+/?")
_RESERVED = ("/api/", "/m/")  # other doors' namespaces: a base there would take their paths


@dataclass(frozen=True)
class Route:
    """The transactions a path may carry; empty for a single endpoint (the body's infno decides). With several,
    the first is meant when the body names none."""

    infnos: tuple[str, ...] = ()

    def choose(self, body_infno: str) -> str | None:
        """The transaction of a request whose body says ``body_infno`` (may be ""); None if the path forbids it."""
        if not self.infnos:
            return body_infno
        if not body_infno:
            return self.infnos[0]
        return body_infno if body_infno in self.infnos else None


def _load() -> tuple[frozenset[str], dict[str, Route], dict[str, str]]:
    doc = tomllib.loads((Path(__file__).with_name("nhsa_paths.toml")).read_text(encoding="utf-8"))
    sources = set(doc["sources"])
    endpoints: set[str] = set()
    named: dict[str, Route] = {}
    canonical: dict[str, str] = {}  # infno → the first path that names it first
    for kind, entries in (("endpoint", doc["endpoint"]), ("path", doc["path"])):
        for entry in entries:
            path = entry["path"]
            if not path.startswith("/") or path in endpoints or path in named:
                raise ValueError(f"nhsa_paths.toml: {kind} {path!r} is not an absolute path, or listed twice")
            if not entry.get("sources") or not set(entry["sources"]) <= sources:
                raise ValueError(f"nhsa_paths.toml: {kind} {path!r} must name its sources from [sources]")
            if kind == "endpoint":
                endpoints.add(path)
                continue
            infnos = tuple(entry["infnos"])
            if not infnos or not all(INFNO.fullmatch(i) for i in infnos):
                raise ValueError(f"nhsa_paths.toml: path {path!r} needs infnos like '2207' or '2207A'")
            named[path] = Route(infnos)
            canonical.setdefault(infnos[0], path)
    return frozenset(endpoints), named, canonical


ENDPOINTS, NAMED, PATHS = _load()
CALL_SERVICE = "/fsi/api/rsfComIfsService/callService"
_SINGLE = Route()
assert CALL_SERVICE in ENDPOINTS


def parse_base_paths(text: str) -> tuple[str, ...]:
    """``MEDPAY_INSTITUTION_BASE_PATHS``: comma-separated paths such as ``/hsa/hgs/``; ValueError naming the one at
    fault. Each is kept with one trailing slash."""
    bases = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        if not _BASE_PATH.fullmatch(raw) or "/../" in raw + "/" or "/./" in raw + "/":
            raise ValueError(f"{raw!r} is not a path like /hsa/hgs/ (letters, digits, . _ ~ - between slashes)")
        base = raw.rstrip("/") + "/"
        if base.startswith(_RESERVED):
            raise ValueError(f"{raw!r} is inside another door's paths ({', '.join(_RESERVED)})")
        bases.append(base)
    return tuple(bases)


class InstitutionPaths:
    def __init__(self, base_paths: tuple[str, ...] = ()):
        self.bases = tuple(sorted(base_paths, key=len, reverse=True))  # the longest base wins

    def route(self, path: str) -> Route | None:
        """The transactions ``path`` carries, or None when it is no transaction's path."""
        under_base = False
        for base in self.bases:
            if path.startswith(base):
                path, under_base = path[len(base) - 1:], True
                break
        if path in ENDPOINTS:
            return _SINGLE
        found = NAMED.get(path)
        if found is not None:
            return found
        if under_base or path.startswith(PREFIX):
            last = path[path.rfind("/") + 1:]
            if INFNO.fullmatch(last):
                return Route((last,))
        return None

    def is_institution(self, path: str) -> bool:
        """Does a request for ``path`` belong to the interface's door (its limits, its envelope)?"""
        return path.startswith(PREFIX) or path == PREFIX[:-1] or self.route(path) is not None


@lru_cache(maxsize=1)
def institution_paths() -> InstitutionPaths:
    """This process's paths, with the base paths of ``MEDPAY_INSTITUTION_BASE_PATHS``; a wrong value stops the
    start (``medpay serve`` asks first)."""
    try:
        return InstitutionPaths(parse_base_paths(os.environ.get(BASE_PATHS_ENV, "")))
    except ValueError as e:
        raise SystemExit(f"{BASE_PATHS_ENV}: {e}") from None
