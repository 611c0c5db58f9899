// Paying what the doctor ordered (诊间支付): the visits whose fees the hospital uploaded, a bill's lines and its
// pre-settlement split, then one signed request that pays exactly that bill (its version). The payment being made is
// remembered in sessionStorage: after a reload or a lost answer the page asks where it stands instead of paying again.
import { clearErrors, post, showError, showHolder, t, text, toFen, yuan } from "./mobile.js";
import { forPath as pathFor, offerFamily } from "./whom.js";
import { loadDevice } from "./device.js";
import { fillResult, renderSplit } from "./payment.js";

const list = document.getElementById("list");
const billSection = document.getElementById("bill");
const result = document.getElementById("result");
const payButton = billSection.querySelector("[data-pay]");
const PENDING = "medpay.bills.pending";

const device = await loadDevice().catch(() => undefined);
let bill = null;  // the bill on screen

function show(section) {
  for (const s of [list, billSection, result]) s.hidden = s !== section;
}

let forPsn = "";  // a family member the signed-in account acts for; "" for the device's own person
const whom = document.getElementById("whom");

/** The path for the person whose bills are shown; acting for a member also sends the session (and CSRF token). */
const forPath = (path, member = forPsn) => pathFor(path, member);
const signedGet = (path, member = forPsn) =>
  post(forPath(path, member), { method: "GET", signedBy: device, session: Boolean(member) });
const visitPath = (code, mdtrt) => `/api/v1/mobile/visits/${encodeURIComponent(code)}/${encodeURIComponent(mdtrt)}`;
const medType = (code) => text.med_types[code] ?? t("med_type_other", { code });

async function showList() {
  show(list);
  clearErrors(list);
  const status = list.querySelector("[data-status]");
  status.textContent = t("bills_loading");
  const { data, error } = await signedGet("/api/v1/mobile/visits");
  status.textContent = "";
  const cards = list.querySelector("[data-visits]");
  cards.replaceChildren();
  if (error) return showError(list, error);
  if (!data.length) status.textContent = t("bills_none");
  for (const v of data) {
    const li = document.createElement("li");
    li.className = "visit";
    const title = document.createElement("h2");
    title.textContent = `${v.fixmedins_name} · ${medType(v.med_type)}`;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = `${t("bills_ready")} ${v.bill_ready_at} · ${t("bills_count", { n: v.line_count })}`;
    const amount = document.createElement("p");
    amount.className = "amount";
    amount.textContent = `¥${yuan(toFen(v.medfee_sumamt))}`;
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = t("bills_open");
    open.dataset.open = v.mdtrt_id;
    open.addEventListener("click", () => showBill(v.fixmedins_code, v.mdtrt_id));
    li.append(title, meta, amount, open);
    cards.append(li);
  }
}

function noteOf(line) {
  const notes = [];
  if (toFen(line.fulamt_ownpay_amt)) notes.push(t("line_ownpay", { amount: yuan(toFen(line.fulamt_ownpay_amt)) }));
  if (toFen(line.preselfpay_amt)) notes.push(t("line_preselfpay", { amount: yuan(toFen(line.preselfpay_amt)) }));
  if (toFen(line.overlmt_amt)) notes.push(t("line_overlmt", { amount: yuan(toFen(line.overlmt_amt)) }));
  return notes.join("；");
}

async function showBill(code, mdtrt, message = "") {
  const { data, error } = await signedGet(visitPath(code, mdtrt));
  if (error) {
    show(list);
    return showError(list, error);
  }
  bill = data;
  billSection.querySelector("[data-bill-title]").textContent = `${data.fixmedins_name} · ${medType(data.med_type)}`;
  const patient = forPsn ? ` · ${whom.selectedOptions[0]?.text ?? ""}` : "";  // whose bill, when not one's own
  billSection.querySelector("[data-bill-meta]").textContent = `${t("bills_ready")} ${data.bill_ready_at}${patient}`;
  const rows = data.lines.map((line) => {
    const tr = document.createElement("tr");
    const item = document.createElement("td");
    const level = document.createElement("span");
    level.className = `level level-${line.chrgitm_lv}`;
    level.textContent = text.line_levels[line.chrgitm_lv] ?? line.chrgitm_lv;
    item.append(level, " ", line.name);
    const note = noteOf(line);
    if (note) {
      const small = document.createElement("small");
      small.textContent = note;
      item.append(document.createElement("br"), small);
    }
    const amount = document.createElement("td");
    amount.className = "num";
    amount.textContent = `¥${yuan(toFen(line.det_item_fee_sumamt))}`;
    tr.append(item, amount);
    return tr;
  });
  billSection.querySelector("[data-lines]").replaceChildren(...rows);
  clearErrors(billSection);
  const due = data.state === "due";
  payButton.hidden = !due;
  if (due) {
    const pre = data.presettlement;
    renderSplit(billSection.querySelector("[data-chart]"), billSection.querySelector("[data-parts]"), pre);
    billSection.querySelector("[data-policy]").textContent = t("presettle_note", { policy: pre.policy_ver });
    const cash = toFen(pre.psn_cash_pay);
    payButton.textContent = cash ? t("pay_cash_button", { amount: yuan(cash) }) : t("pay_zero_button");
  } else {
    billSection.querySelector("[data-chart]").replaceChildren();
    billSection.querySelector("[data-parts]").replaceChildren();
    billSection.querySelector("[data-policy]").textContent = t("nothing_due");
  }
  show(billSection);
  if (message) showError(billSection, { code: "conflict", field: "version", message: "" }, {}, message);
  else billSection.querySelector("[data-bill-title]").focus();
}

payButton.addEventListener("click", async () => {
  if (payButton.disabled) return;  // a second tap while the first is under way
  payButton.disabled = true;
  const label = payButton.textContent;
  payButton.textContent = t("paying");
  const pending = { code: bill.fixmedins_code, mdtrt: bill.mdtrt_id, version: bill.version, member: forPsn };
  sessionStorage.setItem(PENDING, JSON.stringify(pending));
  const { data, error } = await post(forPath(`${visitPath(pending.code, pending.mdtrt)}/pay`),
    { json: { version: pending.version }, signedBy: device, session: Boolean(forPsn) });
  payButton.disabled = false;
  payButton.textContent = label;
  if (error?.code === "network") return resume(pending);  // the answer was lost: ask, never pay blind again
  if (error) {
    sessionStorage.removeItem(PENDING);
    if (error.code === "conflict" && error.field === "version") return showBill(pending.code, pending.mdtrt, t("bill_stale"));
    return showError(billSection, error);
  }
  showResult(data);
});

/** Where the remembered payment stands; shown as its result, or the bill again when it never started. */
async function resume(pending) {
  forPsn = pending.member ?? "";  // the payment under way decides whose bills these are
  if ([...whom.options].some((o) => o.value === forPsn)) whom.value = forPsn;
  show(result);
  const message = result.querySelector("[data-result-message]");
  message.textContent = t("resuming");
  message.hidden = false;
  const { data, error } = await signedGet(`${visitPath(pending.code, pending.mdtrt)}/payments/${pending.version}`,
                                          pending.member ?? "");
  if (error?.code === "not_found") {
    sessionStorage.removeItem(PENDING);
    return showBill(pending.code, pending.mdtrt);
  }
  if (error) return showError(result, error);
  showResult(data);
}

function showResult(payment) {
  if (payment.state !== "in_doubt") sessionStorage.removeItem(PENDING);
  const focus = fillResult(result, payment);
  show(result);
  focus.focus();
}

for (const back of document.querySelectorAll("[data-back]")) back.addEventListener("click", showList);

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  // the family choice arrives beside the list, not before it: one's own bills show without waiting for it
  offerFamily(device, whom, document.querySelector("[data-whom]"), (member) => {
    forPsn = member;
    showList();
  });
  const pending = sessionStorage.getItem(PENDING);
  if (pending) resume(JSON.parse(pending));
  else showList();
}
