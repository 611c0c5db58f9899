// 核验结算单: what the platform says of the slip whose QR code opened this page (no sign-in: anyone may check).
import { lang, post, showError, t, toFen, yuan } from "./mobile.js";

const status = document.querySelector("[data-status]");
const result = document.querySelector("[data-result]");
const code = new URLSearchParams(location.search).get("code");
const when = (iso) => new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN",
  { dateStyle: "medium", timeStyle: "short" });

if (!code) {
  status.textContent = t("verify_no_code");
} else {
  const { data, error } = await post(`/api/v1/mobile/slips/verify?code=${encodeURIComponent(code)}`,
                                     { method: "GET" });
  status.textContent = "";
  if (error) {
    showError(document.querySelector("main"), error);
  } else {
    const verdict = result.querySelector("[data-verdict]");
    verdict.textContent = t(data.genuine ? "verify_genuine" : "verify_mismatch");
    verdict.className = `verdict ${data.genuine ? "ok" : "bad"}`;
    const cancelled = result.querySelector("[data-cancelled]");
    cancelled.hidden = data.status !== "cancelled";
    if (data.cancelled_at) cancelled.textContent = t("verify_cancelled", { when: when(data.cancelled_at) });
    const facts = [[t("slip_setl_id"), data.setl_id], [t("slip_institution"), data.fixmedins_name],
                   [t("slip_time"), when(data.setl_time)], [t("total"), `¥${yuan(toFen(data.medfee_sumamt))}`],
                   [t("part_fund"), `¥${yuan(toFen(data.fund_pay_sumamt))}`],
                   [t("part_account"), `¥${yuan(toFen(data.acct_pay))}`],
                   [t("part_cash"), `¥${yuan(toFen(data.psn_cash_pay))}`]];
    result.querySelector("[data-facts]").replaceChildren(...facts.map(([label, value]) => {
      const row = document.createElement("div");
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = label;
      dd.textContent = value;
      row.append(dt, dd);
      return row;
    }));
    result.hidden = false;
  }
}
