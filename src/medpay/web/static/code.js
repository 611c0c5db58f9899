// The dynamic code: signed with the device key, shown as the SVG the platform renders, refreshed by itself
// before it expires (the API's refresh_in_s, never later than a code's 60 s life) and at once when the business
// type changes. Codes are fetched with no-store and never kept.
import { clearErrors, post, showError, showHolder, t } from "./mobile.js";
import { loadDevice } from "./device.js";
import { forPath, offerFamily } from "./whom.js";

const MAX_REFRESH_S = 60;  // a code lives at most 60 s
const RETRY_S = 10;  // after a network or server fault: try again, but don't hammer
const STOP = new Set(["not_found", "ecert_revoked", "unauthorized", "forbidden"]);  // only activating again helps

const section = document.querySelector("[data-code]");
const select = document.getElementById("business_type");
const qr = section.querySelector("[data-qr]");
const countdown = section.querySelector("[data-countdown]");
const status = section.querySelector("[data-status]");
const png = section.querySelector("[data-png]");

const device = await loadDevice().catch(() => undefined);
let timer = 0;
let deadline = 0;  // Date.now() when the next refresh is due; 0: none scheduled
let generation = 0;  // a newer request (business type changed meanwhile) wins over an older answer
let member = "";  // a family member whose code this device shows (家庭代办); "" for the device's own

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  const businessType = select.value;
  const { data, error } = await post(forPath("/api/v1/mobile/ecert/code", member),
                                    { json: { business_type: businessType }, signedBy: device,
                                      session: Boolean(member) });
  if (mine !== generation) return;
  if (error) {
    qr.replaceChildren();
    png.setAttribute("aria-disabled", "true");
    showError(section, error);
    if (STOP.has(error.code)) stopRefreshing(); else schedule(RETRY_S);
    return;
  }
  clearErrors(section);
  qr.innerHTML = data.svg;  // rendered by the platform (segno): a QR code, no script
  qr.firstElementChild?.setAttribute("aria-hidden", "true");  // the wrapper's label speaks for it
  qr.setAttribute("aria-label", t("qr_label", { business: select.selectedOptions[0].textContent }));
  png.dataset.businessType = businessType;
  if (member) png.setAttribute("aria-disabled", "true");  // a member's code is shown, never saved
  else png.removeAttribute("aria-disabled");
  status.textContent = t("refreshed");
  schedule(Math.min(Math.max(data.refresh_in_s, 1), MAX_REFRESH_S));
}

function schedule(seconds) {
  deadline = Date.now() + seconds * 1000;
  timer = setTimeout(refresh, seconds * 1000);
  tick();
}

function stopRefreshing() {
  deadline = 0;
  tick();
}

function tick() {
  const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  countdown.textContent = deadline ? t("countdown", { s: left }) : "";
}

// The PNG is fetched with a signed request (a signature never goes in a link) and saved from a blob URL.
png.addEventListener("click", async (event) => {
  event.preventDefault();
  if (png.getAttribute("aria-disabled") === "true") return;
  const path = `/api/v1/mobile/ecert/code.png?business_type=${encodeURIComponent(png.dataset.businessType)}`;
  const { data, error } = await post(path, { method: "GET", signedBy: device, blob: true });
  if (error) {
    showError(section, error);
    return;
  }
  const url = URL.createObjectURL(data);
  const link = document.createElement("a");
  link.href = url;
  link.download = `ecert-${png.dataset.businessType}.png`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
});

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  section.hidden = false;
  offerFamily(device, document.getElementById("whom"), section.querySelector("[data-whom]"), (psn) => {
    member = psn;
    refresh();
  });
  select.addEventListener("change", refresh);
  section.querySelector("[data-refresh]").addEventListener("click", refresh);
  // a hidden page's timers may be held back: a code shown again after its refresh was due is fetched anew
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && deadline && Date.now() >= deadline) refresh();
  });
  setInterval(tick, 1000);
  refresh();
}
