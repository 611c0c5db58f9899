// Paying a bill code (reverse scan): a photo of the code on the window's screen (or its pasted text) is read by
// the platform, which says what the bill asks without paying; after the patient confirms, the request that pays it
// is signed by the device key and the whole bill settles in one step.
import { clearErrors, post, showError, showHolder, t, text, toFen, yuan } from "./mobile.js";
import { loadDevice } from "./device.js";

const scan = document.getElementById("scan");
const confirm = document.getElementById("confirm");
const result = document.getElementById("result");
const photo = document.getElementById("image");
const paste = document.getElementById("paste");
const status = scan.querySelector("[data-status]");
const payButton = confirm.querySelector("[data-pay]");

const PARTS = [  // how a settlement splits the bill (acct_pay includes the family members' share)
  ["fund", (s) => toFen(s.fund_pay_sumamt)],
  ["account", (s) => toFen(s.acct_pay) - toFen(s.acct_mulaid_pay)],
  ["family", (s) => toFen(s.acct_mulaid_pay)],
  ["cash", (s) => toFen(s.psn_cash_pay)],
];
const SVG = "http://www.w3.org/2000/svg";

const device = await loadDevice().catch(() => undefined);
let bill = null;  // the preview of the bill being confirmed

function show(section) {
  for (const s of [scan, confirm, result]) s.hidden = s !== section;
}

async function read(request, source) {
  clearErrors(scan);
  status.textContent = t("reading");
  const { data, error } = await post("/api/v1/mobile/bills/preview", request);
  status.textContent = "";
  if (error) {
    showError(scan, error, { bill: source, body: source });  // a bad code from a photo is the photo's fault
    return;
  }
  bill = data;
  confirm.querySelector("[data-institution]").textContent = data.fixmedins_name;
  confirm.querySelector("[data-what]").textContent = text.med_types[data.med_type] ?? t("med_type_other", { code: data.med_type });
  confirm.querySelector("[data-amount]").textContent = `¥${yuan(toFen(data.medfee_sumamt))}`;
  confirm.querySelector("[data-expires]").textContent = new Date(data.expires_at).toLocaleTimeString(text.html_lang);
  confirm.querySelector("[data-paid]").hidden = data.state !== "paid";
  payButton.hidden = data.state === "paid";
  payButton.textContent = t("pay_button", { amount: yuan(toFen(data.medfee_sumamt)) });
  clearErrors(confirm);
  show(confirm);
  payButton.focus();
}

photo.addEventListener("change", () => {
  const file = photo.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file, file.name || "bill.jpg");
  read({ form }, "image");
  photo.value = "";  // the same photo chosen again is read again
});

paste.addEventListener("submit", (event) => {
  event.preventDefault();
  read({ json: { bill: paste.bill.value.trim() } }, "bill");
});

payButton.addEventListener("click", async () => {
  payButton.disabled = true;
  payButton.textContent = t("paying");
  const { data, error } = await post("/api/v1/mobile/bills/pay", { json: { bill: bill.bill }, signedBy: device });
  payButton.disabled = false;
  payButton.textContent = t("pay_button", { amount: yuan(toFen(bill.medfee_sumamt)) });
  if (error) {
    showError(confirm, error);
    return;
  }
  showResult(data);
});

const STATE_MESSAGES = { in_doubt: "state_in_doubt", declined: "state_declined" };

function showResult(payment) {
  const paid = payment.state === "captured" && Boolean(payment.settlement);
  const title = result.querySelector("[data-result-title]");
  const message = result.querySelector("[data-result-message]");
  for (const part of result.querySelectorAll("[data-result-title], [data-figure], [data-parts], [data-setl]")) {
    part.hidden = !paid;
  }
  message.hidden = paid;
  result.querySelector("[data-parts]").replaceChildren();
  if (paid) {
    const info = payment.settlement.setlinfo;
    const parts = PARTS.map(([name, amount]) => ({ name, fen: amount(info), label: t(`part_${name}`) }));
    drawChart(parts, toFen(info.medfee_sumamt));
    listParts(parts, toFen(info.medfee_sumamt));
    result.querySelector("[data-setl-id]").textContent = info.setl_id;
  } else {
    message.textContent = t(STATE_MESSAGES[payment.state] ?? "state_failed");
  }
  show(result);
  (paid ? title : message).focus();
}

/** One bar, a segment per part in proportion to its amount. The list below says the same in numbers. */
function drawChart(parts, totalFen) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 1000 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", parts.filter((p) => p.fen).map((p) => `${p.label} ¥${yuan(p.fen)}`).join(" · "));
  let x = 0;
  for (const part of parts) {
    if (!part.fen) continue;
    const width = (part.fen / totalFen) * 1000;
    const rect = document.createElementNS(SVG, "rect");
    for (const [k, v] of Object.entries({ x, y: 0, width, height: 40, class: `part-${part.name}` })) rect.setAttribute(k, v);
    rect.dataset.part = part.name;
    rect.dataset.fen = part.fen;
    svg.append(rect);
    x += width;
  }
  result.querySelector("[data-chart]").replaceChildren(svg);
}

function listParts(parts, totalFen) {
  const list = result.querySelector("[data-parts]");
  for (const part of [...parts, { name: "total", fen: totalFen, label: t("total") }]) {
    const row = document.createElement("div");
    row.dataset.part = part.name;
    row.className = part.name === "total" ? "total" : "";
    const dt = document.createElement("dt");
    if (part.name !== "total") {
      const swatch = document.createElement("span");
      swatch.className = `swatch part-${part.name}`;
      swatch.setAttribute("aria-hidden", "true");
      dt.append(swatch);
    }
    dt.append(part.label);
    const dd = document.createElement("dd");
    dd.textContent = `¥${yuan(part.fen)}`;
    row.append(dt, dd);
    list.append(row);
  }
}

confirm.querySelector("[data-cancel]").addEventListener("click", () => show(scan));
result.querySelector("[data-again]").addEventListener("click", () => show(scan));

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  show(scan);
}
