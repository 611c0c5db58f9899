// 报销记录: the year's settlements fund by fund, the year's totals and accumulators; the signed slip (PDF) and the
// year's CSV are fetched with the device's signature and handed to the browser as downloads.
import { clearErrors, lang, post, showError, showHolder, t, text, toFen, yuan } from "./mobile.js";
import { loadDevice } from "./device.js";
import { renderSplit } from "./payment.js";
import { forPath, offerFamily } from "./whom.js";

const section = document.getElementById("records");
const status = section.querySelector("[data-status]");
const yearSelect = document.getElementById("year");
const device = await loadDevice().catch(() => undefined);
let member = "";

const when = (iso) => new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN",
  { dateStyle: "medium", timeStyle: "short" });
const medType = (code) => text.med_types[code] ?? t("med_type_other", { code });
const signedGet = (path, blob = false) =>
  post(forPath(path, member), { method: "GET", signedBy: device, session: Boolean(member), blob });

function el(tag, className, textContent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (textContent !== undefined) node.textContent = textContent;
  return node;
}

/** Hand `blob` to the browser as a file named `name`. */
function download(blob, name) {
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function accumulatorLabel(key) {
  if (key === "admissions") return t("acc_admissions");
  const [scope, kind] = [key.slice(0, key.lastIndexOf(".")), key.slice(key.lastIndexOf(".") + 1)];
  return `${scope} · ${text.acc_suffix[kind] ?? kind}`;
}

function card(r) {
  const li = el("li", "visit record");
  li.dataset.setl = r.setl_id;
  li.append(el("h2", "", `${r.fixmedins_name} · ${medType(r.med_type)}`),
            el("p", "meta", `${when(r.setl_time)} · ${r.setl_id}`));
  const badge = el("span", `tag${r.status === "cancelled" ? " cancelled" : ""}`,
                   t(r.status === "cancelled" ? "record_cancelled" : "record_standing"));
  li.append(badge, el("p", "amount", `¥${yuan(toFen(r.medfee_sumamt))}`));
  const parts = el("dl", "parts");
  const chart = el("div");
  renderSplit(chart, parts, r);
  li.append(chart, parts);
  if (r.setldetail.length) {
    const funds = el("ul", "plain funds");
    for (const d of r.setldetail) {
      const row = el("li");
      row.append(el("span", "", d.name || d.fund_pay_type), el("span", "num", `¥${yuan(toFen(d.fund_payamt))}`));
      funds.append(row);
    }
    li.append(funds);
  }
  if (r.cash_refund && r.cash_refund.state !== "none") {
    const key = r.cash_refund.state === "done" ? "record_refund_done" : "record_refund_pending";
    li.append(el("p", "note", t(key, { amount: yuan(toFen(r.cash_refund.captured)) })));
  }
  li.append(el("p", "hint", t("record_policy", { policy: r.policy_ver })));
  const slip = el("button", "", t("slip_button"));
  slip.type = "button";
  slip.dataset.slip = r.setl_id;
  slip.addEventListener("click", async () => {
    clearErrors(section);
    const path = `/api/v1/mobile/records/${encodeURIComponent(r.setl_id)}/slip.pdf?lang=${lang}`;
    const { data, error } = await signedGet(path, true);
    if (error) return showError(section, error);
    download(data, `slip-${r.setl_id}.pdf`);
  });
  li.append(slip);
  return li;
}

async function show() {
  clearErrors(section);
  status.textContent = t("bills_loading");
  const list = section.querySelector("[data-list]");
  list.replaceChildren();
  const { data, error } = await signedGet(`/api/v1/mobile/records?year=${yearSelect.value}`);
  status.textContent = "";
  const totals = section.querySelector("[data-totals]");
  const acc = section.querySelector("[data-accumulators]");
  if (error) {
    totals.hidden = acc.hidden = true;
    return showError(section, error);
  }
  if (!data.settlements.length) status.textContent = t("records_none");
  totals.hidden = !data.settlements.length;
  if (data.settlements.length) {
    section.querySelector("[data-totals-title]").textContent = t("records_totals", { n: data.totals.count });
    renderSplit(totals.querySelector("[data-chart]"), totals.querySelector("[data-parts]"), data.totals);
  }
  list.replaceChildren(...data.settlements.map(card));
  showNotices();
  showAccesses();
  acc.hidden = !data.accumulators.length;
  acc.querySelector("[data-acc]").replaceChildren(...data.accumulators.map(({ key, value }) => {
    const row = el("div");
    row.append(el("dt", "", accumulatorLabel(key)),
               el("dd", "", key === "admissions" ? String(value) : `¥${yuan(value)}`));
    return row;
  }));
}

/** What happened on this person's account (one's own only, like the list below). */
async function showNotices() {
  const card = section.querySelector("[data-notices]");
  card.hidden = true;
  if (member) return;
  const { data, error } = await post("/api/v1/mobile/notices?limit=20", { method: "GET", signedBy: device });
  if (error || !data.length) return;
  card.querySelector("[data-notice-list]").replaceChildren(...data.map((n) => {
    const li = el("li");
    li.dataset.notice = n.kind;
    const key = n.kind === "revoked" ? `notice_revoked_${n.reason}` : `notice_${n.kind}`;
    li.append(el("span", "", t(key, {
      institution: n.fixmedins_name ?? "", total: yuan(toFen(n.medfee_sumamt ?? 0)),
      cash: yuan(toFen(n.psn_cash_pay ?? 0)), amount: yuan(toFen(n.amount ?? 0)), setl: n.setl_id ?? "" })),
      el("p", "meta", when(n.at)));
    return li;
  }));
  card.hidden = false;
}

/** Who was shown this person's data (one's own list only: not shown when acting for a family member). */
async function showAccesses() {
  const card = section.querySelector("[data-accesses]");
  card.hidden = true;
  if (member) return;
  const { data, error } = await post("/api/v1/mobile/accesses?limit=20", { method: "GET", signedBy: device });
  if (error || !data.length) return;
  card.querySelector("[data-access-list]").replaceChildren(...data.map((e) => {
    const li = el("li");
    li.append(el("span", "", `${text.actor_kinds[e.actor_kind] ?? e.actor_kind} ${e.actor}`),
              el("p", "meta", `${when(e.at)} · ${e.action}${e.fields.length ? ` · ${e.fields.join(", ")}` : ""}`));
    return li;
  }));
  card.hidden = false;
}

section.querySelector("[data-csv]").addEventListener("click", async () => {
  clearErrors(section);
  const { data, error } = await signedGet(`/api/v1/mobile/records.csv?year=${yearSelect.value}`, true);
  if (error) return showError(section, error);
  download(data, `medpay-${yearSelect.value}.csv`);
});

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  const thisYear = new Date().getFullYear();
  yearSelect.replaceChildren(...[0, 1, 2].map((back) => new Option(String(thisYear - back))));
  yearSelect.addEventListener("change", show);
  offerFamily(device, document.getElementById("whom"), section.querySelector("[data-whom]"), (psn) => {
    member = psn;
    show();
  });  // beside the list, not before it
  section.hidden = false;
  await show();
}
