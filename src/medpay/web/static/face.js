// Face payment from the app (刷脸开通): the separate consent first — nothing is filmed or sent before it is ticked —
// then the PIN set twice, then the selfie filmed while the person performs the random challenge the platform
// asks for, sent once with the PIN (signed by the device key) and dropped. The result names the quality gate's or
// the liveness check's reason when refused. Withdrawal: confirm, then DELETE; the page says the template is gone.
import { clearErrors, errorMessage, post, showError, showHolder, t } from "./mobile.js";
import { loadDevice } from "./device.js";
import { filmChallenge, multipart } from "./camera.js";

const ENROL = "/api/v1/mobile/face/enrolment";
const PIN = /^[0-9]{6}$/;

const $ = (selector) => document.querySelector(selector);
const form = $("#enrol");
const capture = $("#capture");
const outcome = $("#outcome");
const device = await loadDevice().catch(() => undefined);

/** The PIN typed twice, or an error shown next to the field at fault. */
function pinTwice() {
  const pin = form.pin.value.trim();
  if (!PIN.test(pin)) {
    showError(form, { code: "face_pin", field: "pin", message: "" }, {}, t("face_pin_format"));
    return null;
  }
  if (form.pin_again.value.trim() !== pin) {
    showError(form, { code: "face_pin", field: "pin_again", message: "" }, {}, t("face_pin_mismatch"));
    return null;
  }
  return pin;
}

function showOutcome(words, error) {
  capture.hidden = true;
  form.hidden = false;
  $("[data-outcome]").textContent = words;
  const reason = $("[data-reason]");
  const detail = $("[data-detail]");
  reason.hidden = detail.hidden = !error;
  if (error) {
    reason.textContent = t("face_reason", { reason: error.words ?? errorMessage(error).message });
    detail.textContent = error.message ? `${error.field ? `${error.field}: ` : ""}${error.message}` : "";
    detail.hidden = !error.message;
  }
  outcome.hidden = false;
  outcome.scrollIntoView({ block: "nearest" });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(form);
  outcome.hidden = true;
  if (!form.consent.checked) {  // the camera stays off, nothing is sent
    showError(form, { code: "face_consent", field: "consent", message: "" }, {}, t("face_consent_needed"));
    return;
  }
  const pin = pinTwice();
  if (!pin) return;
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const asked = await post(`${ENROL}/challenge`, { signedBy: device });  // an empty body, signed
    if (asked.error) return showOutcome(t("face_refused"), asked.error);
    form.hidden = true;
    capture.hidden = false;
    let frames;
    try {
      frames = await filmChallenge($("#camera"), asked.data.challenge, $("[data-instruction]"));
    } catch {
      return showOutcome(t("face_refused"), { code: "camera", field: "", message: "", words: t("camera_denied") });
    }
    const body = multipart({ consent: "true", consent_version: form.consent_version.value, pin,
                             challenge_token: asked.data.challenge_token }, frames);
    frames = null;  // the frames leave the page once, and are dropped
    const { error } = await post(ENROL, { bytes: body, signedBy: device });
    if (error) return showOutcome(t("face_refused"), error);
    form.reset();
    $("[data-withdrawn]").hidden = true;
    showOutcome(t("face_enrolled"));
  } finally {
    button.disabled = false;
  }
});

// -- withdrawal: confirm, then DELETE ------------------------------------------------------------------------------

const confirmBox = $("[data-confirm]");
$("[data-withdraw]").addEventListener("click", () => {
  $("[data-withdrawn]").hidden = true;
  confirmBox.hidden = false;
  $("[data-withdraw-yes]").focus();
});
$("[data-withdraw-no]").addEventListener("click", () => { confirmBox.hidden = true; });
$("[data-withdraw-yes]").addEventListener("click", async () => {
  confirmBox.hidden = true;
  const failed = $("[data-withdraw-error]");
  failed.hidden = true;
  const { data, error } = await post(ENROL, { method: "DELETE", signedBy: device });
  if (error) {
    failed.textContent = errorMessage(error).message;
    failed.hidden = false;
    return;
  }
  outcome.hidden = true;
  const done = $("[data-withdrawn]");
  done.textContent = t(data.status === "withdrawn" ? "face_withdrawn" : "face_not_enrolled");
  done.hidden = false;
});

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  $("[data-face]").hidden = false;
}
