"""The interface's dictionaries (字典) as data: ``nhsa_dictionaries.toml``, each with its sources. 1901 answers them;
the rest of the platform takes its code lists from here. No project imports."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Dictionary:
    type: str
    name: str
    entries: tuple[tuple[str, str], ...]  # (value, label), in order

    def labels(self) -> dict[str, str]:
        return dict(self.entries)


def _load() -> tuple[dict[str, Dictionary], str, int]:
    doc = tomllib.loads(Path(__file__).with_name("nhsa_dictionaries.toml").read_text(encoding="utf-8"))
    found: dict[str, Dictionary] = {}
    for d in doc["dictionary"]:
        if d["type"] in found or not set(d["sources"]) <= set(doc["sources"]):
            raise ValueError(f"nhsa_dictionaries.toml: {d['type']} is listed twice or names unknown sources")
        values = [v for v, _ in d["entries"]]
        if len(values) != len(set(values)):
            raise ValueError(f"nhsa_dictionaries.toml: {d['type']} lists a value twice")
        found[d["type"]] = Dictionary(d["type"], d["name"], tuple((v, label) for v, label in d["entries"]))
    return found, doc["created"], doc["version"]


DICTIONARIES, CREATED, VERSION = _load()
