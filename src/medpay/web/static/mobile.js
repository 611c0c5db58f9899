// Shared by the mobile pages: the page's words, calls to the mobile API, errors next to their field, money.
import { signedHeaders } from "./device.js";

export const text = JSON.parse(document.getElementById("page-text").textContent);

// 适老化: large text and high contrast, switched in the header and remembered on this device.
const LARGE = "medpay.largeText";
function applyLargeText(on) {
  if (on) document.documentElement.dataset.size = "large";
  else delete document.documentElement.dataset.size;
  document.querySelector("[data-large-text]")?.setAttribute("aria-pressed", String(on));
}
applyLargeText(localStorage.getItem(LARGE) === "1");
document.querySelector("[data-large-text]")?.addEventListener("click", () => {
  const on = document.documentElement.dataset.size !== "large";
  localStorage.setItem(LARGE, on ? "1" : "0");
  applyLargeText(on);
});

/** The page's words for `key`, with {name} placeholders filled in. */
export function t(key, vars = {}) {
  return String(text[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "");
}

let csrfToken = null;

/** The signed-in session's CSRF token (from GET /api/v1/mobile/account), sent with its state-changing requests. */
export function setCsrf(token) {
  csrfToken = token;
}

/** Call the mobile API: POST `json` (an object), `form` (FormData) or `bytes` ({body: Uint8Array, type}: a body
 * the page built, so that a signature can cover it), or GET. With `signedBy` (a device: its privateKey, and its
 * ecert_id once activated; or a kiosk: its privateKey and terminal_id) the request is signed in headers. With
 * `session`, the session cookie goes along (and the CSRF token, on anything but a GET). Resolves
 * to {data} or {error}, never throws: the error has the API's shape {code, field, message}; "network" when no
 * answer came. With `blob`, data is the response body as a Blob (an image). */
export async function post(path, { json, form, bytes, signedBy, session = false, method = "POST", blob = false } = {}) {
  const body = json ? JSON.stringify(json) : bytes ? bytes.body : form;
  const headers = json ? { "Content-Type": "application/json" } : bytes ? { "Content-Type": bytes.type } : {};
  if (session && method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    if (signedBy) Object.assign(headers, await signedHeaders(signedBy, method, path, body ?? ""));
    response = await fetch(path, { method, cache: "no-store", credentials: session ? "same-origin" : "omit",
                                   headers, body });
  } catch {
    return { error: { code: "network", field: "", message: "" } };
  }
  if (response.ok && blob) return { data: await response.blob() };
  const answer = await response.json().catch(() => null);
  if (response.ok && answer) return { data: answer };
  return { error: answer?.error ?? { code: response.status >= 500 ? "internal" : "invalid", field: "", message: "" } };
}

/** The message for an API error in the page's language; `generic` when only the fallback matched. */
export function errorMessage(error) {
  const m = text.errors;
  const known = m[`${error.code}.${error.field}`] ?? m[`${error.code}.*`] ?? m[`*.${error.field}`] ?? m[error.code];
  return { message: known ?? m["*"], generic: known === undefined };
}

/** Show `error` next to the field it names inside `root` (or in the root's general slot), mark that input invalid
 * and move the focus there. `aliases` maps an API field to a field on this page; `words`: the page's own message
 * for a check made on the page. */
export function showError(root, error, aliases = {}, words = undefined) {
  clearErrors(root);
  const field = aliases[error.field] ?? error.field;
  const slot = root.querySelector(`[data-error-for="${CSS.escape(field)}"]`) ?? root.querySelector('[data-error-for="*"]');
  const { message, generic } = words ? { message: words, generic: false } : errorMessage(error);
  slot.textContent = message;
  if (generic && error.message) {  // the API's own (English) words, so nothing is lost
    const detail = document.createElement("span");
    detail.className = "detail";
    detail.lang = "en";
    detail.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
    slot.append(detail);
  }
  slot.setAttribute("role", "alert");
  slot.hidden = false;
  const input = field && root.querySelector(`[name="${CSS.escape(field)}"]`);
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
}

export function clearErrors(root) {
  for (const slot of root.querySelectorAll("[data-error-for]")) {
    slot.hidden = true;
    slot.textContent = "";
  }
  for (const input of root.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

/** Yuan as the API sends it (a JSON number) → integer fen, exact for two decimals. */
export const toFen = (yuan) => Math.round(Number(yuan) * 100);

/** Integer fen → "1234.56". */
export function yuan(fen) {
  const sign = fen < 0 ? "-" : "";
  const abs = Math.abs(fen);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** "王**（999901********0011）": whose e-certificate this device holds, masked. */
export function showHolder(device) {
  const line = document.querySelector("[data-holder]");
  if (!line || !device) return;
  line.textContent = t("holder", { name: device.userName, idno: device.idNo });
  line.hidden = false;
}

/** The page's language for links between the pages. */
export const lang = text.html_lang === "en" ? "en" : "zh";
