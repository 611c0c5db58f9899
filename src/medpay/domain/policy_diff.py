"""What changed between two versions of a policy, in words (zh-CN first, English too).

``diff_policies(old, new)`` walks both policies' dataclass fields — so a setting added to the policy format is
compared without a change here — and returns one ``Change`` per difference, each with a path
("tiers.emp_inpatient.deductible.rules[2].amount"), both values and a sentence such as
"职工住院统筹（emp_inpatient）起付线 第3条规则（医院等级 三级）：900.00 元 → 800.00 元".

Tiers are matched by code and examples by name; rules and bands by their position in the list (the engine takes
the first rule that matches, so a rule's position is part of its meaning). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medpay.domain.policy_words import fmt, is_money, label, rule_title, summary, tier_title, word

ADDED, REMOVED, CHANGED = "added", "removed", "changed"

_VERBS = {"zh": {ADDED: "新增", REMOVED: "删除", "order": "顺序"},
          "en": {ADDED: "added", REMOVED: "removed", "order": "order"}}


@dataclass(frozen=True)
class Change:
    path: str
    kind: str  # "added" | "removed" | "changed"
    old: Any
    new: Any
    zh: str
    en: str

    def text(self, lang: str = "zh") -> str:
        return self.en if lang == "en" else self.zh

    def __str__(self) -> str:
        return self.zh


@dataclass(frozen=True)
class _Where:
    """Where in the policy a comparison stands: its path and its words in both languages."""

    path: str
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    money: bool = False  # whole numbers below here are fen

    def down(self, key: str, zh: str, en: str, *, index: bool = False, money: bool = False) -> "_Where":
        path = f"{self.path}[{key}]" if index else (f"{self.path}.{key}" if self.path else key)
        return _Where(path, self.zh + ((zh,) if zh else ()), self.en + ((en,) if en else ()), self.money or money)

    def words(self, lang: str) -> str:
        if lang == "en":
            return " ".join(self.en) if self.en else word("policy", lang)
        return " ".join(self.zh).replace("） ", "）") if self.zh else word("policy", lang)


class _Differ:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, where: _Where, kind: str, old: Any, new: Any, name: str) -> None:
        texts = {}
        for lang in ("zh", "en"):
            colon = word("colon", lang)
            if kind == CHANGED:
                texts[lang] = (f"{where.words(lang)}{colon}{fmt(old, lang, name, where.money)} → "
                               f"{fmt(new, lang, name, where.money)}")
            else:
                value = new if kind == ADDED else old
                shown = _short(value, lang) if dataclasses.is_dataclass(value) else fmt(value, lang, name, where.money)
                verb = _VERBS[lang][kind]
                texts[lang] = (f"{verb}{where.words(lang)}{colon}{shown}" if lang != "en"
                               else f"{where.words(lang)} {verb}{colon}{shown}")
        self.changes.append(Change(where.path, kind, old, new, texts["zh"], texts["en"]))

    # ------------------------------------------------------------------------------------------

    def value(self, where: _Where, name: str, old: Any, new: Any) -> None:
        if old == new:
            return
        if dataclasses.is_dataclass(old) and type(old) is type(new):
            self.record(where, old, new)
        elif isinstance(old, tuple) and isinstance(new, tuple) and name not in ("year_start",):
            self.sequence(where, name, old, new)
        elif isinstance(old, Mapping) and isinstance(new, Mapping):
            self.mapping(where, name, old, new)
        elif isinstance(old, list) and isinstance(new, list):
            self.sequence(where, name, tuple(old), tuple(new))
        else:
            self.add(where, CHANGED, old, new, name)

    def record(self, where: _Where, old: Any, new: Any) -> None:
        new_fields = {f.name for f in dataclasses.fields(new)}
        for f in dataclasses.fields(old):
            if f.name not in new_fields:
                continue
            a, b = getattr(old, f.name), getattr(new, f.name)
            if a == b:
                continue
            if f.name == "match":  # a rule's conditions: listed by their own names, under the rule
                self.record(where.down("match", "", ""), a, b)
                continue
            listed = isinstance(a, tuple) and any(dataclasses.is_dataclass(x) for x in a + b) and not _key_field(a + b)
            # rules and bands: their titles ("第3条比例规则") say which list they are in
            labels = ("", "") if listed else _labels(f.name)
            self.value(where.down(f.name, *labels, money=is_money(f.name)), f.name, a, b)

    def mapping(self, where: _Where, name: str, old: Mapping, new: Mapping) -> None:
        for key in list(old) + [k for k in new if k not in old]:
            key_text = str(key)
            child = where.down(key_text, *_labels(key_text, own=True))
            if key not in new:
                self.add(child, REMOVED, old[key], None, key_text)
            elif key not in old:
                self.add(child, ADDED, None, new[key], key_text)
            else:
                self.value(child, key_text, old[key], new[key])

    def sequence(self, where: _Where, name: str, old: tuple, new: tuple) -> None:
        items = old + new
        if items and all(isinstance(x, str) for x in items) and name != "admission_factors":
            # a list of names or references: what came and what went, in either order
            for x in old:
                if x not in new:
                    self.add(where, REMOVED, x, None, name)
            for x in new:
                if x not in old:
                    self.add(where, ADDED, None, x, name)
            return
        if items and all(isinstance(x, Mapping) for x in items):  # an example's fee lines: line by line
            for i in range(max(len(old), len(new))):
                child = where.down(str(i), f"[{i + 1}]", f"[{i + 1}]", index=True)
                self.value(child, name, old[i] if i < len(old) else None, new[i] if i < len(new) else None)
            return
        if not items or not all(dataclasses.is_dataclass(x) for x in items):
            self.add(where, CHANGED, old, new, name)
            return
        key = _key_field(items)
        if key:
            self.keyed(where, name, key, old, new)
            return
        single = len(old) == len(new) == 1 and name == "bands"  # one ratio for all: no band to name
        for i in range(max(len(old), len(new))):
            item = old[i] if i < len(old) else new[i]
            child = where.down(str(i), "" if single else rule_title(i, item, "zh", name),
                               "" if single else rule_title(i, item, "en", name), index=True)
            if i >= len(new):
                self.add(child, REMOVED, old[i], None, name)
            elif i >= len(old):
                self.add(child, ADDED, None, new[i], name)
            else:  # a rule whose conditions change is named by its old ones
                self.record(child, old[i], new[i])

    def keyed(self, where: _Where, name: str, key: str, old: tuple, new: tuple) -> None:
        olds = {getattr(x, key): x for x in old}
        news = {getattr(x, key): x for x in new}
        for k, item in olds.items():
            child = _item_where(where, name, k, item)
            if k not in news:
                self.add(child, REMOVED, item, None, name)
            else:
                self.value(child, name, item, news[k])
        for k, item in news.items():
            if k not in olds:
                self.add(_item_where(where, name, k, item), ADDED, None, item, name)
        common_old = [k for k in olds if k in news]
        common_new = [k for k in news if k in olds]
        if common_old != common_new:  # the engine walks tiers in order: a new order may change a settlement
            order = where.down("order", _VERBS["zh"]["order"], _VERBS["en"]["order"])
            self.add(order, CHANGED, tuple(common_old), tuple(common_new), key)


def _short(value: Any, lang: str) -> str:
    """An added or removed tier or example in a few words; anything else by its settings."""
    names = {f.name for f in dataclasses.fields(value)}
    if {"code", "kind", "fund_pay_type"} <= names:
        return word("sep", lang).join((fmt(value.kind, lang, "kind"),
                                       f"{label('fund_pay_type', lang)} {value.fund_pay_type}",
                                       f"{label('base', lang)} {fmt(getattr(value, 'base', ''), lang, 'base')}"))
    if {"name", "source"} <= names:
        return f"{label('source', lang)} {value.source}"
    return summary(value, lang)


def _labels(name: str, own: bool = False) -> tuple[str, str]:
    if own and label(name, "zh") == name.replace("_", " "):
        return name, name  # a mapping's key (a psn_type code, a charge category): itself
    return label(name, "zh"), label(name, "en")


def _key_field(items: tuple) -> str:
    """Objects with a code (tiers) or a name of their own (examples) are matched by it, not by position."""
    for key in ("code", "name"):
        if all(key in {f.name for f in dataclasses.fields(x)} for x in items):
            values = [getattr(x, key) for x in items]
            if all(isinstance(v, str) and v for v in values):
                return key
    return ""


def _item_where(where: _Where, name: str, key: str, item: Any) -> _Where:
    if name == "tiers":
        return _Where(f"tiers.{key}", (tier_title(item, "zh"),), (tier_title(item, "en"),))
    if name == "examples":
        return _Where(f"examples.{key}", (word("example", "zh", name=key),), (word("example", "en", name=key),))
    return where.down(key, key, key)


def diff_policies(old: Any, new: Any) -> list[Change]:
    """Every difference between two policies, in the order of the policy's own fields (head, tiers, examples)."""
    d = _Differ()
    d.record(_Where(""), old, new)
    return d.changes
