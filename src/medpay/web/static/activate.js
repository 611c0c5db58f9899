// Activation in two steps: psn_no + certno + the separate consent ask the platform to text a code to the phone on
// the person's record; the code (or a counter code a staff member handed over) then comes back with a device key
// made here, the request signed by that key. The key is stored only after the platform accepted it, so a refusal
// leaves nothing behind, here or there.
import { clearErrors, lang, post, showError, t } from "./mobile.js";
import { loadDevice, newDeviceKey, saveDevice } from "./device.js";

const start = document.getElementById("activate");
const confirm = document.getElementById("confirm");
const counter = document.getElementById("counter");
let activationId = null;

const current = await loadDevice().catch(() => undefined);
if (current) {
  const note = document.querySelector("[data-current]");
  note.textContent = t("current_holder", { holder: t("holder", { name: current.userName, idno: current.idNo }) });
  note.hidden = false;
}

/** Run `work` with the form's button busy; errors are shown next to their field by the caller. */
async function busy(form, label, work) {
  const button = form.querySelector("button[type=submit]");
  const idle = button.textContent;
  button.disabled = true;
  button.textContent = t(label);
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.textContent = idle;
  }
}

start.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(start);
  const { data, error } = await busy(start, "sending", () => post("/api/v1/mobile/ecert/activate", { json: {
    psn_no: start.psn_no.value.trim(), certno: start.certno.value.trim().toUpperCase(),
    consent: start.consent.checked,
  } }));
  if (error) {
    showError(start, error);
    return;
  }
  activationId = data.activation_id;
  confirm.querySelector("[data-sent]").textContent = t("code_sent", { phone: data.phone });
  confirm.hidden = false;
  confirm.code.focus();
});

/** Make a device key, send `fields` with its public half, signed by it; keep the key only if accepted. */
async function bind(form, fields) {
  let key;
  try {
    key = await newDeviceKey();
  } catch {
    document.querySelector("[data-unsupported]").hidden = false;
    return;
  }
  const { data, error } = await busy(form, "activating", () => post("/api/v1/mobile/ecert/activate/confirm", {
    json: { device_public_key: key.publicKeyHex, ...fields }, signedBy: { privateKey: key.privateKey },
  }));
  if (error) {
    showError(form, error);
    return;
  }
  await saveDevice({ ecert_id: data.ecert_id, privateKey: key.privateKey, publicKeyHex: key.publicKeyHex,
                     userName: data.userName, idNo: data.idNo });
  location.assign(`/m/?lang=${lang}`);
}

confirm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(confirm);
  bind(confirm, { activation_id: activationId, code: confirm.code.value.trim() });
});

counter.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(counter);
  bind(counter, { counter_code: counter.counter_code.value.trim().toUpperCase() });
});
