"""Queries (52xx): 5203 a settlement, 5204 a visit's fee lines, 5206 a person's year totals.

5204 answers rows as the specification's 5204 table gives them (``medpay.nhsa_models.FeeRow``): ``output`` is the
list of rows itself — what HIS clients read — or ``{"feedetail": rows}`` for an institution whose
``fee_query_shape`` is ``object`` (``medpay institution fee-query-shape``). Cancelled lines (2205/2302) are not
listed; ``setl_id`` filters the lines of one settlement.
"""

from __future__ import annotations

from typing import Any

from medpay.api.institution.transactions import LINE_DEFAULTS, Call, target_visit, handler, node, text
from medpay.domain.interface_settings import FeeQueryShape
from medpay.interface_format import to_yuan
from medpay.local_time import format_local, local_date
from medpay.money import yuan_number
from medpay.services.errors import Invalid

NO_PRICE_LIMIT = 999999_00  # fen: pric_uplmt_amt is required; an item without a limit answers 999999 (as 河北 does)
# what the platform does not know of an item (no drug register here): empty text, never null
UNKNOWN_ITEM_TEXT = ("prodname", "spec", "dosform_name", "hosp_prep_flag", "prodplac_type")


@handler("5203")
def query_settlement(call: Call) -> dict:
    d = node(call, "data")
    out = call.platform.settlement.settlement(call.fixmedins_code, text(d, "setl_id", "data"), with_identity=True,
                                              psn_no=text(d, "psn_no", "data", required=False), ref=call.env.msgid)
    return to_yuan(out)


@handler("5204")
def query_fees(call: Call) -> Any:
    d, mdtrt_id, psn_no = target_visit(call)
    setl_id = text(d, "setl_id", "data", required=False)
    lines = [x for x in call.platform.settlement.fee_lines(call.fixmedins_code, mdtrt_id, psn_no)
             if x["status"] != "cancelled" and (not setl_id or x["setl_id"] == setl_id)]
    rows = [to_yuan(fee_row(line)) for line in lines]
    if call.platform.settlement.fee_query_shape(call.fixmedins_code) == FeeQueryShape.OBJECT.value:
        return {"feedetail": rows}
    return rows


def fee_row(line: dict[str, Any]) -> dict[str, Any]:
    """One 5204 row (fen) from a line of ``SettlementService.fee_lines``."""
    details = line["details"]
    return {
        **LINE_DEFAULTS, **{k: "" for k in UNKNOWN_ITEM_TEXT},
        "mdtrt_id": line["mdtrt_id"], "setl_id": line["setl_id"], "feedetl_sn": line["feedetl_sn"],
        "med_type": line["med_type"], "fee_ocur_time": format_local(line["fee_ocur_time"]),
        "cnt": line["cnt"], "pric": line["pric"], "det_item_fee_sumamt": line["det_item_fee_sumamt"],
        "pric_uplmt_amt": NO_PRICE_LIMIT if line["pric_uplmt_amt"] is None else line["pric_uplmt_amt"],
        "selfpay_prop": line["selfpay_prop"], "fulamt_ownpay_amt": line["fulamt_ownpay_amt"],
        "overlmt_amt": line["overlmt_amt"], "preselfpay_amt": line["preselfpay_amt"],
        "inscp_scp_amt": line["inscp_scp_amt"], "chrgitm_lv": line["chrgitm_lv"],
        "med_chrgitm_type": line["med_chrgitm_type"],
        "hilist_code": line["med_list_codg"], "hilist_name": line["hilist_name"], "list_type": line["list_type"],
        "med_list_codg": line["med_list_codg"],
        # the HIS's own code and name when it sent them, else the insurance catalog's
        "medins_list_codg": line["medins_list_codg"] or line["med_list_codg"],
        "medins_list_name": details.get("medins_list_name") or line["hilist_name"],
        **{k: v for k, v in details.items() if k != "medins_list_name"},
    }


@handler("5206")
def query_accumulators(call: Call) -> dict:
    d = node(call, "data")
    psn_no = text(d, "psn_no", "data")
    year_text = (text(d, "cum_ym", "data", required=False)[:4]
                 or str(local_date(call.platform.settlement.clock()).year))
    if not year_text.isdigit():
        raise Invalid("data.cum_ym", "must start with a year yyyy")
    acc = call.platform.settlement.accumulators(psn_no, int(year_text), call.fixmedins_code)
    return {"cuminfo": [{"year": year_text, "cum_type_code": key,
                         "cum": value if key == "admissions" else yuan_number(value)}
                        for key, value in sorted(acc.items())]}
