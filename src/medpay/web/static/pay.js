// Paying a bill code (reverse scan): a photo of the code on the window's screen (or its pasted text) is read by
// the platform, which says what the bill asks without paying; after the patient confirms, the request that pays it
// is signed by the device key and the whole bill settles in one step.
import { clearErrors, post, showError, showHolder, t, text, toFen, yuan } from "./mobile.js";
import { loadDevice } from "./device.js";
import { fillResult } from "./payment.js";

const scan = document.getElementById("scan");
const confirm = document.getElementById("confirm");
const result = document.getElementById("result");
const photo = document.getElementById("image");
const paste = document.getElementById("paste");
const status = scan.querySelector("[data-status]");
const payButton = confirm.querySelector("[data-pay]");

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

function showResult(payment) {
  const focus = fillResult(result, payment);
  show(result);
  focus.focus();
}

confirm.querySelector("[data-cancel]").addEventListener("click", () => show(scan));
result.querySelector("[data-again]").addEventListener("click", () => show(scan));

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  show(scan);
}
