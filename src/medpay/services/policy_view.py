"""A policy for people to read (the admin door's policy page): its head, each tier in words, its sources and its
worked examples with the amounts each expects, the amounts the engine computes, and whether they agree.

Pass or fail is ``services.policy_examples.run_example``'s verdict (the one ``medpay policy check`` gives); the
computed amounts beside it are that same run's.
"""

from __future__ import annotations

from typing import Any

from medpay.domain.policy import Policy, PolicyExample
from medpay.domain.policy_words import describe_tier, fmt, label, tier_title
from medpay.money import format_yuan
from medpay.services.policy_examples import run_example

HEAD_FIELDS = ("admdvs", "version", "effective_from", "effective_to", "year_start", "rounding",
               "preselfpay_rounding_scope", "yi_selfpay_default", "yi_selfpay_by_category", "account")


def _yuan(fen: int | None) -> str | None:
    return None if fen is None else format_yuan(fen)


def example_view(policy: Policy, example: PolicyExample, lang: str) -> dict[str, Any]:
    result = run_example(policy, example)
    adj = result.adjudication  # None when the example can't be settled: result.error says why
    amounts: dict[str, int] = adj.amounts if adj else {}
    tiers: dict[str, Any] = {t.code: t for t in adj.tiers} if adj else {}
    rows = []
    for name, want in example.expect.items():
        got = amounts.get(name)
        rows.append({"field": name, "label": label(name, lang), "expected": _yuan(want), "computed": _yuan(got),
                     "ok": got == want})
    for code, figures in example.expect_tiers.items():
        tier = tiers.get(code)
        for name, want in figures.items():
            got = getattr(tier, name, None) if tier is not None else None
            rows.append({"field": f"tiers.{code}.{name}", "label": f"{code} {label(name, lang)}",
                         "expected": _yuan(want), "computed": _yuan(got), "ok": got == want})
    return {"name": example.name, "source": example.source, "note": example.note, "passed": result.passed,
            "error": result.error, "amounts": rows}


def policy_view(policy: Policy, lang: str = "zh") -> dict[str, Any]:
    lang = "en" if lang == "en" else "zh"
    head = [{"label": label(name, lang), "value": fmt(getattr(policy, name), lang, name)}
            for name in HEAD_FIELDS if hasattr(policy, name)]
    return {
        "policy_id": policy.policy_id, "admdvs": policy.admdvs, "name": policy.name, "version": policy.version,
        "effective_from": policy.effective_from.isoformat(),
        "effective_to": policy.effective_to.isoformat() if policy.effective_to else None,
        "source": policy.source, "references": list(policy.references), "head": head,
        "tiers": [{"code": t.code, "title": tier_title(t, lang), "lines": describe_tier(t, lang)}
                  for t in policy.tiers],
        "examples": [example_view(policy, ex, lang) for ex in policy.examples],
    }
