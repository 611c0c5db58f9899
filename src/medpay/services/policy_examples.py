"""Run the worked examples a policy file carries, to the fen.

Each example is a stand-alone quote document (services.quote) plus the amounts it must produce. A policy
whose examples don't reproduce is refused by ``medpay policy check``: the difference names the example,
the field and both amounts, so an author sees at once which rule or which number is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from medpay.domain.adjudication import Adjudication
from medpay.domain.policy import Policy, PolicyExample
from medpay.money import format_yuan
from medpay.services.errors import Invalid
from medpay.services.quote import adjudicate_document


@dataclass(frozen=True)
class Difference:
    field: str  # "hifp_pay" or "tiers.emp_inpatient.fund_payamt"
    expected: int
    actual: int | None  # None: the tier did not apply at all

    def __str__(self) -> str:
        got = "未适用 / tier did not apply" if self.actual is None else format_yuan(self.actual)
        return f"{self.field}: 应为 {format_yuan(self.expected)}，实为 {got}"


@dataclass(frozen=True)
class ExampleResult:
    example: PolicyExample
    differences: tuple[Difference, ...] = ()
    error: str = ""  # the example itself can't be settled (a missing fact, a bad line)
    adjudication: Adjudication | None = None  # the engine's split, for showing the computed amounts beside

    @property
    def passed(self) -> bool:
        return not self.differences and not self.error


def plain_document(value: Any) -> Any:
    """TOML gives dates as date objects; the quote document takes the interface's text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: plain_document(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_document(v) for v in value]
    return value


def run_example(policy: Policy, example: PolicyExample) -> ExampleResult:
    try:
        *_, adj = adjudicate_document(policy, plain_document(example.doc))
    except Invalid as e:
        return ExampleResult(example, error=f"{e.field}: {e.message}")
    diffs = [Difference(k, want, adj.amounts.get(k)) for k, want in example.expect.items()
             if adj.amounts.get(k) != want]
    tiers = {t.code: t for t in adj.tiers}
    for code, figures in example.expect_tiers.items():
        tier = tiers.get(code)
        for k, want in figures.items():
            got = getattr(tier, k) if tier is not None else None
            if got != want:
                diffs.append(Difference(f"tiers.{code}.{k}", want, got))
    return ExampleResult(example, tuple(diffs), adjudication=adj)


def run_examples(policy: Policy) -> list[ExampleResult]:
    return [run_example(policy, ex) for ex in policy.examples]
