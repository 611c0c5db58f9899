// The face kiosk (刷脸自助机): one big button; the camera films the random challenge the platform asks for; the
// patient types the PIN on a big keypad; the platform verifies, names the person (masked) and the bills due; the
// patient confirms and the whole bill settles in one step. Every refusal says why and offers the QR code or ID card.
//
// Every request is signed by the kiosk's own Ed25519 key, made here with WebCrypto (non-extractable, kept in
// IndexedDB) and registered by staff: the set-up screen shows its public key.
import { errorMessage, post, t, text, toFen, yuan } from "./mobile.js";
import { loadKiosk, newDeviceKey, saveKiosk } from "./device.js";
import { filmChallenge, multipart, stopCamera } from "./camera.js";

const PIN_DIGITS = 6;

const $ = (selector) => document.querySelector(selector);
const SECTIONS = ["setup", "welcome", "capture", "pin", "wait", "bill", "result", "refused", "fallback-note"];
const WITH_FALLBACK = new Set(["welcome", "capture", "pin", "bill", "refused"]);

let kiosk = null;  // {privateKey, publicKeyHex, terminal_id, org_id, limit}
let attempt = null;  // {session, frames, pin, identity, visit, msgid}

function show(id) {
  for (const s of SECTIONS) document.getElementById(s).hidden = s !== id;
  $("#fallback-bar").hidden = !WITH_FALLBACK.has(id);
}

function wait(key) {
  $("[data-wait]").textContent = t(key);
  show("wait");
}

/** A refusal: the page's plain words for it (``words`` for the page's own), the platform's reason beside them, and
 * the way without a face. */
function refuse(error) {
  stopCamera();
  $("[data-reason]").textContent = error.words ?? errorMessage(error).message;
  $("[data-detail]").textContent = error.message ? `${error.field ? `${error.field}: ` : ""}${error.message}` : "";
  attempt = null;
  show("refused");
}

const signed = (path, json) => post(path, { json, signedBy: kiosk });

// -- set-up: the kiosk's key, registered by staff ------------------------------------------------------------------

async function setUp() {
  try {
    kiosk = await loadKiosk();
    if (!kiosk) {
      kiosk = await newDeviceKey();
      await saveKiosk(kiosk);
    }
  } catch {
    $("[data-unsupported]").hidden = false;
    show("setup");
    return;
  }
  if (kiosk.terminal_id) {
    show("welcome");
    return;
  }
  $("#public-key").textContent = kiosk.publicKeyHex;
  show("setup");
}

$("#setup-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const org = $("#org").value.trim();
  const terminal = $("#terminal").value.trim();
  const limit = toFen($("#limit").value.trim() || "0");
  if (!org || !terminal || !(limit > 0)) return;
  kiosk = { ...kiosk, org_id: org, terminal_id: terminal, limit };
  await saveKiosk(kiosk);
  show("welcome");
});

// -- the challenge on camera ---------------------------------------------------------------------------------------

async function film(challenge) {
  const instruction = $("[data-instruction]");
  instruction.textContent = t("camera_wait");
  show("capture");
  return filmChallenge($("#camera"), challenge, instruction);
}

$("#start").addEventListener("click", async () => {
  $("[data-over-limit]").hidden = true;
  wait("camera_wait");
  const { data, error } = await signed("/api/v1/terminal/face/sessions", {
    orgId: kiosk.org_id, businessType: "01301", amount: yuan(kiosk.limit) });
  if (error) return refuse(error);
  attempt = { session: data };
  try {
    attempt.frames = await film(data.challenge);
  } catch {
    return refuse({ code: "camera", field: "", message: "", words: t("camera_denied") });
  }
  askPin();
});

// -- the PIN on a big keypad ---------------------------------------------------------------------------------------

function askPin() {
  attempt.pin = "";
  drawPin();
  show("pin");
}

function drawPin() {
  $("[data-dots]").textContent = "●".repeat(attempt.pin.length) + "○".repeat(PIN_DIGITS - attempt.pin.length);
  $("#pin-ok").disabled = attempt.pin.length !== PIN_DIGITS;
}

for (const key of document.querySelectorAll("[data-key]")) {
  key.addEventListener("click", () => {
    if (attempt && attempt.pin.length < PIN_DIGITS) attempt.pin += key.dataset.key;
    drawPin();
  });
}
$("[data-clear]").addEventListener("click", () => { attempt.pin = ""; drawPin(); });
$("[data-back]").addEventListener("click", () => { attempt.pin = attempt.pin.slice(0, -1); drawPin(); });

$("#pin-ok").addEventListener("click", async () => {
  wait("verifying");
  const form = multipart({ orgId: kiosk.org_id, session_id: attempt.session.session_id, pin: attempt.pin },
                         attempt.frames);
  attempt.pin = "";
  attempt.frames = null;  // the frames leave the page once, and are dropped
  const verified = await post("/api/v1/terminal/face/verify", { bytes: form, signedBy: kiosk });
  if (verified.error) return refuse(verified.error);
  const checked = await signed("/api/v1/terminal/face/auth-check", { orgId: kiosk.org_id,
                                                                     authNo: verified.data.authNo });
  if (checked.error) return refuse(checked.error);
  attempt.identity = checked.data.data;
  wait("loading_bills");
  const due = await signed("/api/v1/terminal/due-visits", { orgId: kiosk.org_id, ecToken: attempt.identity.ecToken });
  if (due.error) return refuse(due.error);
  showBill(due.data);
});

// -- the bill, confirmed by the patient, paid in one step ----------------------------------------------------------

function showBill(due) {
  const visit = due.visits[0];
  if (!visit) {
    finish(t("no_bills"), "");
    return;
  }
  if (toFen(visit.medfee_sumamt) > kiosk.limit) {
    refuse({ code: "over_limit", field: "", message: "", words: t("over_limit", { limit: yuan(kiosk.limit) }) });
    return;
  }
  attempt.visit = visit;
  attempt.msgid = `K${Date.now()}${crypto.randomUUID().slice(0, 8)}`;  // a retry reuses it: paid once
  $("[data-who]").textContent = t("who", { name: attempt.identity.userName });
  $("[data-idno]").textContent = t("idno", { idno: attempt.identity.idNo });
  $("[data-institution]").textContent = due.fixmedins_name;
  $("[data-visit]").textContent = `${text.med_types[visit.med_type] ?? visit.med_type} · ${visit.begntime.slice(0, 10)}`;
  const parts = {
    total: toFen(visit.medfee_sumamt), fund: toFen(visit.fund_pay_sumamt),
    account: toFen(visit.acct_pay) - toFen(visit.acct_mulaid_pay), family: toFen(visit.acct_mulaid_pay),
    cash: toFen(visit.psn_cash_pay),
  };
  for (const [name, fen] of Object.entries(parts)) $(`[data-part="${name}"]`).textContent = `¥${yuan(fen)}`;
  show("bill");
}

$("#pay").addEventListener("click", async () => {
  wait("paying");
  const { data, error } = await signed("/api/v1/terminal/settle", {
    msgid: attempt.msgid, ecToken: attempt.identity.ecToken, mdtrt_id: attempt.visit.mdtrt_id });
  if (error) return refuse(error);
  if (data.state === "captured") {
    finish(t("paid"), t("setl_id", { id: data.setl_id }));
  } else {
    finish(t("refused"), t(`state_${data.state}`));
  }
});

function finish(title, detail) {
  $("[data-result-title]").textContent = title;
  $("[data-result-detail]").textContent = detail;
  attempt = null;
  show("result");
}

// -- leaving: done, cancel, try again, or the way without a face ---------------------------------------------------

function reset() {
  stopCamera();
  attempt = null;
  show("welcome");
}

for (const button of document.querySelectorAll("[data-done], [data-cancel], [data-again]")) {
  button.addEventListener("click", reset);
}
$("#fallback").addEventListener("click", () => {
  stopCamera();
  attempt = null;
  show("fallback-note");
});

await setUp();
