// 住院: each admission's deposit, fees so far, the patient's expected share and what the deposit still covers; a
// top-up through the gateway (one request id per top-up, kept in sessionStorage so a reload or a lost answer asks
// again with the same id instead of paying twice); the request to be discharged; the discharge settlement.
import { clearErrors, lang, post, showError, showHolder, t, toFen, yuan } from "./mobile.js";
import { loadDevice } from "./device.js";
import { forPath, offerFamily } from "./whom.js";

const section = document.getElementById("stay");
const status = section.querySelector("[data-status]");
const done = section.querySelector("[data-done]");
const template = document.getElementById("stay-card");
const device = await loadDevice().catch(() => undefined);
const PENDING = "medpay.stay.pending";
let member = "";

const call = (path, options = {}) =>
  post(forPath(path, member), { signedBy: device, session: Boolean(member), ...options });
const stayPath = (s) => `/api/v1/mobile/stays/${encodeURIComponent(s.fixmedins_code)}/${encodeURIComponent(s.mdtrt_id)}`;
const money = (y) => `¥${yuan(toFen(y))}`;
const day = (iso) => new Date(iso).toLocaleDateString(lang === "en" ? "en-GB" : "zh-CN", { dateStyle: "medium" });

/** The top-up under way for this stay: {amount, request_id}, made once and reused until it has an answer. */
function pendingTopUp(mdtrt, amount) {
  const all = JSON.parse(sessionStorage.getItem(PENDING) ?? "{}");
  if (amount === undefined) return all[mdtrt];
  all[mdtrt] = amount === null ? undefined : { amount, request_id: all[mdtrt]?.amount === amount
    ? all[mdtrt].request_id : crypto.randomUUID() };
  sessionStorage.setItem(PENDING, JSON.stringify(all));
  return all[mdtrt];
}

function card(s) {
  const li = template.content.firstElementChild.cloneNode(true);
  li.dataset.stay = s.mdtrt_id;
  const q = (sel) => li.querySelector(sel);
  q("[data-title]").textContent = s.fixmedins_name;
  q("[data-meta]").textContent = t("stay_since", { date: day(s.begntime) });
  q("[data-state]").textContent = t(`stay_state_${s.status}`);
  q("[data-deposit]").textContent = money(s.deposit_total);
  q("[data-fees]").textContent = money(s.fee_sumamt);
  q("[data-share]").textContent = s.own_share === null ? "—" : money(s.own_share);
  q("[data-balance]").textContent = money(s.deposit_balc);
  const open = s.status === "open";
  q("[data-low]").hidden = !(open && s.deposit_balc < 0);
  const amountId = `amount-${s.mdtrt_id}`;
  q("[data-amount]").id = amountId;
  q("[data-amount-label]").htmlFor = amountId;
  q("[data-amount]").placeholder = t("amount_hint");
  const form = q("[data-top-up]");
  form.hidden = !open;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = q("[data-pay]");
    if (button.disabled) return;
    clearErrors(li);
    done.hidden = true;
    const amount = q("[data-amount]").value.trim();
    const { request_id } = pendingTopUp(s.mdtrt_id, amount);
    button.disabled = true;
    const { data, error } = await call(`${stayPath(s)}/deposits`, { json: { amount, request_id } });
    button.disabled = false;
    if (error?.code === "network") return showError(li, error);  // the same request id is sent again next time
    pendingTopUp(s.mdtrt_id, null);
    if (error) return showError(li, error, {}, error.field === "mdtrt_id" ? t("stay_closed") : undefined);
    done.textContent = data.state === "deposited" ? t("stay_paid", { amount: yuan(toFen(data.amount)) })
      : t(data.state === "in_doubt" ? "stay_in_doubt" : "stay_declined");
    done.hidden = false;
    await refresh();
  });
  const requested = Boolean(s.discharge_requested_at);
  q("[data-discharge]").hidden = requested || s.status === "settled";
  q("[data-requested]").hidden = !requested || s.status === "settled";
  q("[data-discharge]").addEventListener("click", async (event) => {
    event.currentTarget.disabled = true;
    const { error } = await call(`${stayPath(s)}/discharge`, { json: {} });
    if (error) return showError(li, error);
    await refresh();
  });
  if (s.settlement) {
    q("[data-final]").hidden = false;
    q("[data-f-total]").textContent = money(s.settlement.medfee_sumamt);
    q("[data-f-fund]").textContent = money(s.settlement.fund_pay_sumamt);
    q("[data-f-applied]").textContent = money(s.settlement.deposit_applied);
    q("[data-f-refund]").textContent = money(s.settlement.deposit_refund);
  }
  return li;
}

async function refresh() {
  status.textContent = t("bills_loading");
  const { data, error } = await call("/api/v1/mobile/stays", { method: "GET" });
  status.textContent = "";
  const list = section.querySelector("[data-stays]");
  if (error) {
    list.replaceChildren();
    return showError(section, error);
  }
  if (!data.length) status.textContent = t("stay_none");
  list.replaceChildren(...data.map(card));
}

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  offerFamily(device, document.getElementById("whom"), section.querySelector("[data-whom]"), (psn) => {
    member = psn;
    done.hidden = true;
    refresh();
  });
  section.hidden = false;
  await refresh();
}
