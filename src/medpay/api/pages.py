"""Human pages. zh-CN first; ``?lang=en`` for English."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from medpay import __version__
from medpay.adapters.db.tables import InstitutionRow, PersonRow, SettlementRow
from medpay.api.deps import platform
from medpay.api.platform import Platform

router = APIRouter(tags=["pages"])

TEXT = {
    "zh": {"title": "medpay 医保便捷支付平台", "tagline": "门诊、急诊、住院费用一站式结算：统筹基金、个人账户与个人自付一次完成。",
           "status": "运行状态", "institutions": "定点医药机构", "persons": "参保人员", "settlements": "结算笔数",
           "policies": "在用政策", "region": "医保区划", "version": "版本", "effective": "生效日期", "docs": "接口文档 (OpenAPI)",
           "mobile": "患者手机端：医保码、扫码付", "other": "English"},
    "en": {"title": "medpay — unified medical-insurance payment", "tagline": "Outpatient, emergency and inpatient bills settle in one step: pooled fund, personal account and the patient's share.",
           "status": "Status", "institutions": "Designated institutions", "persons": "Insured persons",
           "settlements": "Settlements", "policies": "Policies in force", "region": "Region", "version": "Version",
           "effective": "Effective from", "docs": "API documentation (OpenAPI)",
           "mobile": "The patient's mobile app: QR code, bill payment", "other": "中文"},
}


@router.get("/healthz", summary="健康检查 / liveness and database check")
def healthz(p: Platform = Depends(platform)) -> dict[str, str]:
    with p.engine.connect() as conn:
        conn.execute(select(1))
    return {"status": "ok", "version": __version__}


@router.get("/", response_class=HTMLResponse, summary="首页 / home page")
def home(lang: str = "zh", p: Platform = Depends(platform)) -> HTMLResponse:
    t = TEXT["en" if lang == "en" else "zh"]
    session = p.factory()
    try:
        counts = [session.execute(select(func.count()).select_from(m)).scalar_one() for m in (InstitutionRow, PersonRow, SettlementRow)]
    finally:
        session.close()
    rows = "".join(
        f"<tr><td>{escape(x.admdvs)}</td><td>{escape(x.name)}</td><td>{escape(x.version)}</td>"
        f"<td>{x.effective_from.isoformat()}</td></tr>" for x in p.policies)
    other = "en" if lang != "en" else "zh"
    html = f"""<!doctype html><html lang="{'en' if lang == 'en' else 'zh-CN'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(t['title'])}</title>
<style>body{{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem auto;max-width:56rem;padding:0 1rem;color:#1b2a3a}}
h1{{color:#0b6e4f}}.cards{{display:flex;gap:1rem;flex-wrap:wrap}}.card{{border:1px solid #cfe3da;border-radius:.6rem;padding:1rem 1.4rem;min-width:10rem}}
.card b{{display:block;font-size:2rem;color:#0b6e4f}}table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #e3ece8;padding:.4rem;text-align:left}}</style></head>
<body><p style="text-align:right"><a href="/?lang={other}">{t['other']}</a></p><h1>{escape(t['title'])}</h1><p>{escape(t['tagline'])}</p>
<h2>{t['status']}</h2><div class="cards"><div class="card">{t['institutions']}<b>{counts[0]}</b></div>
<div class="card">{t['persons']}<b>{counts[1]}</b></div><div class="card">{t['settlements']}<b>{counts[2]}</b></div></div>
<h2>{t['policies']}</h2><table><tr><th>{t['region']}</th><th></th><th>{t['version']}</th><th>{t['effective']}</th></tr>{rows}</table>
<p><a href="/m/?lang={'en' if lang == 'en' else 'zh'}">{t['mobile']}</a> · <a href="/docs">{t['docs']}</a> · medpay {__version__}</p></body></html>"""
    return HTMLResponse(html)
