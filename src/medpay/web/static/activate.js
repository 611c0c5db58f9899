// Activation: psn_no + certno + the separate consent, and a device key made here. The key is stored only after
// the platform accepted the activation, so a refusal leaves nothing behind, here or there.
import { clearErrors, lang, post, showError, t } from "./mobile.js";
import { loadDevice, newDeviceKey, saveDevice } from "./device.js";

const form = document.getElementById("activate");
const button = form.querySelector("button[type=submit]");

const current = await loadDevice().catch(() => undefined);
if (current) {
  const note = document.querySelector("[data-current]");
  note.textContent = t("current_holder", { holder: t("holder", { name: current.userName, idno: current.idNo }) });
  note.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  let key;
  try {
    key = await newDeviceKey();
  } catch {
    document.querySelector("[data-unsupported]").hidden = false;
    return;
  }
  button.disabled = true;
  button.textContent = t("activating");
  const { data, error } = await post("/api/v1/mobile/ecert/activate", { json: {
    psn_no: form.psn_no.value.trim(), certno: form.certno.value.trim().toUpperCase(),
    device_public_key: key.publicKeyHex, consent: form.consent.checked,
  } });
  button.disabled = false;
  button.textContent = t("activate_button");
  if (error) {
    showError(form, error);
    return;
  }
  await saveDevice({ ecert_id: data.ecert_id, privateKey: key.privateKey, publicKeyHex: key.publicKeyHex,
                     userName: data.userName, idNo: data.idNo });
  location.assign(`/m/?lang=${lang}`);
});
