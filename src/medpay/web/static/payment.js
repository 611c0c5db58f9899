// A payment as the pages show it: who pays a bill — fund, personal account, family aid, the patient's cash — as one
// bar and the same in numbers (for a settlement, or a pre-settlement the patient confirms), and a payment's outcome
// in the result section (templates/_mobile_result.html).
import { t, toFen, yuan } from "./mobile.js";

const PARTS = [  // how a settlement splits the bill (acct_pay includes the family members' share)
  ["fund", (s) => toFen(s.fund_pay_sumamt)],
  ["account", (s) => toFen(s.acct_pay) - toFen(s.acct_mulaid_pay)],
  ["family", (s) => toFen(s.acct_mulaid_pay)],
  ["cash", (s) => toFen(s.psn_cash_pay)],
];
const SVG = "http://www.w3.org/2000/svg";

/** Fill `chart` (a container) and `list` (a <dl>) with the split of `info` (amounts in yuan, as the API sends). */
export function renderSplit(chart, list, info) {
  const parts = PARTS.map(([name, amount]) => ({ name, fen: amount(info), label: t(`part_${name}`) }));
  const total = toFen(info.medfee_sumamt);
  drawChart(chart, parts, total);
  listParts(list, parts, total);
}

/** One bar, a segment per part in proportion to its amount. The list beside it says the same in numbers. */
function drawChart(chart, parts, totalFen) {
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
  chart.replaceChildren(svg);
}

function listParts(list, parts, totalFen) {
  list.replaceChildren();
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

const STATE_MESSAGES = { in_doubt: "state_in_doubt", declined: "state_declined" };

/** Fill the result `section` with `payment` (the API's Payment): the split when paid, else what happened. Returns
 * the element to move the focus to once the section is shown. */
export function fillResult(section, payment) {
  const paid = payment.state === "captured" && Boolean(payment.settlement);
  const title = section.querySelector("[data-result-title]");
  const message = section.querySelector("[data-result-message]");
  for (const part of section.querySelectorAll("[data-result-title], [data-figure], [data-parts], [data-setl]")) {
    part.hidden = !paid;
  }
  message.hidden = paid;
  section.querySelector("[data-parts]").replaceChildren();
  if (paid) {
    const info = payment.settlement.setlinfo;
    renderSplit(section.querySelector("[data-chart]"), section.querySelector("[data-parts]"), info);
    section.querySelector("[data-setl-id]").textContent = info.setl_id;
  } else {
    message.textContent = t(STATE_MESSAGES[payment.state] ?? "state_failed");
  }
  return paid ? title : message;
}
