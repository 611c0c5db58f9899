// 我的: sign in with a phone number and a texted code; then the account — the person it speaks for (linked by this
// device's e-certificate key), family members it acts for and family members' requests to act for this person, the
// signed-in browsers, sign-out here or everywhere. The session lives in an httpOnly
// cookie no script can read; the CSRF token the account answer carries goes with every change.
import { clearErrors, lang, post, setCsrf, showError, t } from "./mobile.js";
import { loadDevice } from "./device.js";

const status = document.querySelector("[data-status]");
const signIn = document.getElementById("sign-in");
const phoneForm = document.getElementById("phone-form");
const codeForm = document.getElementById("code-form");
const view = document.getElementById("account");
const linkForm = document.getElementById("link-form");
const signOutForm = document.getElementById("sign-out-form");
const familyForm = document.getElementById("family-form");
const requestsForm = document.getElementById("requests-form");
const exportForm = document.getElementById("export-form");
const deletionForm = document.getElementById("deletion-form");
const device = await loadDevice().catch(() => undefined);
let challenge = null;

const when = (iso) => new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN",
  { dateStyle: "medium", timeStyle: "short" });

/** "WeChat · Android" from a User-Agent: enough to tell one's own devices apart. */
function describeAgent(ua) {
  if (!ua) return t("unknown_browser");
  const app = [["MicroMessenger", "WeChat"], ["AlipayClient", "Alipay"], ["Edg/", "Edge"], ["Firefox/", "Firefox"],
               ["Chrome/", "Chrome"], ["Safari/", "Safari"]].find(([mark]) => ua.includes(mark));
  const os = [["HarmonyOS", "HarmonyOS"], ["Android", "Android"], ["iPhone", "iPhone"], ["iPad", "iPad"],
              ["Windows", "Windows"], ["Mac OS", "macOS"], ["Linux", "Linux"]].find(([mark]) => ua.includes(mark));
  return [app?.[1], os?.[1]].filter(Boolean).join(" · ") || ua.slice(0, 40);
}

function item(parts) {
  const li = document.createElement("li");
  for (const part of parts) li.append(part);
  return li;
}

function span(text, className) {
  const el = document.createElement(className === "meta" ? "p" : "span");
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

async function show() {
  const { data, error } = await post("/api/v1/mobile/account", { method: "GET", session: true });
  status.hidden = true;
  if (error) {
    setCsrf(null);
    view.hidden = true;
    signIn.hidden = false;
    if (error.code !== "unauthorized") showError(phoneForm, error);
    return;
  }
  setCsrf(data.csrf_token);
  signIn.hidden = true;
  view.hidden = false;
  view.querySelector("[data-phone]").textContent = t("signed_in_as", { phone: data.phone });
  const persons = view.querySelector("[data-persons]");
  persons.replaceChildren(...data.persons.map((p) => {
    const unlink = document.createElement("button");
    unlink.type = "button";
    unlink.textContent = t("unlink_button");
    unlink.addEventListener("click", () => change(linkForm, `/api/v1/mobile/account/persons/${p.psn_no}`,
                                                  { method: "DELETE" }));
    const tags = [span(t(`relation_${p.relation}`), "tag"),
                  ...(p.status === "pending" ? [span(t("status_pending"), "tag")] : [])];
    const lost = p.relation !== "self" ? [] : [button(t("revoke_device_button"), () => {
      if (confirm(t("revoke_device_confirm"))) {
        change(linkForm, `/api/v1/mobile/account/persons/${p.psn_no}/revoke-device`);
      }
    }, "danger")];
    return item([span(p.name), ...tags, unlink, ...lost, span(t("linked_at", { when: when(p.linked_at) }), "meta")]);
  }));
  const speaksForSelf = data.persons.some((p) => p.relation === "self");
  view.querySelector("[data-family]").hidden = !speaksForSelf;
  if (speaksForSelf) await showRequests();
  view.querySelector("[data-no-person]").hidden = data.persons.length > 0;
  const linkable = device && !data.persons.some((p) => p.relation === "self");
  linkForm.hidden = !linkable;
  if (linkable) linkForm.querySelector("[data-link]").textContent = t("link_button", { name: device.userName });
  view.querySelector("[data-sessions]").replaceChildren(...data.sessions.map((s) => item([
    span(describeAgent(s.user_agent)),
    ...(s.current ? [span(t("this_browser"), "tag")] : []),
    span(t("last_seen", { when: when(s.last_seen_at) }), "meta")])));
}

/** Family members' requests to act for this account's person: consent, decline, or withdraw a consent given. */
async function showRequests() {
  const card = view.querySelector("[data-requests-card]");
  const { data, error } = await post("/api/v1/mobile/family/requests", { method: "GET", session: true });
  card.hidden = Boolean(error) || !data.length;
  if (error) return;
  const answer = (link, consent) => change(requestsForm, `/api/v1/mobile/family/requests/${link}`, { json: { consent } });
  view.querySelector("[data-requests]").replaceChildren(...data.map((r) => {
    const buttons = r.status === "pending"
      ? [button(t("consent_button"), () => answer(r.link_id, true), "primary"),
         button(t("decline_button"), () => answer(r.link_id, false))]
      : [button(t("withdraw_button"), () => answer(r.link_id, false), "danger")];
    return item([span(t("request_from", { name: r.from_name, relation: t(`relation_${r.relation}`) })), ...buttons,
                 span(t(r.status === "pending" ? "request_pending" : "request_active"), "meta")]);
  }));
}

function button(label, onClick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (className) b.className = className;
  b.addEventListener("click", onClick);
  return b;
}

/** A state-changing request of the signed-in browser; the page shows the account again after it. */
async function change(form, path, options = {}) {
  clearErrors(form);
  const { error } = await post(path, { session: true, ...options });
  if (error) {
    showError(form, error);
    if (error.code === "unauthorized" && error.field === "session") await show();
    return false;
  }
  await show();
  return true;
}

phoneForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(phoneForm);
  const phone = phoneForm.phone.value.replace(/\s/g, "");
  if (!/^1[3-9]\d{9}$/.test(phone)) {
    showError(phoneForm, { code: "invalid", field: "phone", message: "" });
    return;
  }
  const { data, error } = await post("/api/v1/mobile/sign-in", { json: { phone } });
  if (error) {
    showError(phoneForm, error);
    return;
  }
  challenge = { id: data.challenge_id, phone };
  codeForm.querySelector("[data-sent]").textContent = t("sign_in_code_sent", { phone: data.phone });
  codeForm.hidden = false;
  codeForm.code.focus();
});

codeForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(codeForm);
  const button = codeForm.querySelector("button");
  button.disabled = true;  // a double tap sends one code
  const { error } = await post("/api/v1/mobile/sign-in/confirm", { session: true, json: {
    challenge_id: challenge?.id ?? "", phone: challenge?.phone ?? "", code: codeForm.code.value.trim() } });
  button.disabled = false;
  if (error) {
    showError(codeForm, error);
    return;
  }
  codeForm.reset();
  codeForm.hidden = true;
  await show();
});

familyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const ok = await change(familyForm, "/api/v1/mobile/family", { json: {
    psn_no: familyForm.psn_no.value.trim(), certno: familyForm.certno.value.trim().toUpperCase(),
    relation: familyForm.relation.value, as_guardian: familyForm.as_guardian.checked } });
  if (ok) familyForm.reset();
});

linkForm.addEventListener("submit", (event) => {
  event.preventDefault();
  change(linkForm, "/api/v1/mobile/account/persons", { signedBy: device });
});

signOutForm.addEventListener("submit", (event) => {
  event.preventDefault();
  change(signOutForm, "/api/v1/mobile/sign-out");
});

signOutForm.querySelector("[data-sign-out-everywhere]").addEventListener("click", () => {
  if (confirm(t("sign_out_everywhere_confirm"))) change(signOutForm, "/api/v1/mobile/sign-out/everywhere");
});

// 我的数据: the export is signed by this device (its person's data only); the deletion request also needs the session.
view.querySelector("[data-my-data]").hidden = !device;

exportForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(exportForm);
  const { data, error } = await post("/api/v1/mobile/my-data", { method: "GET", signedBy: device, blob: true });
  if (error) return showError(exportForm, error);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(data);
  a.download = "medpay-my-data.json";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
});

deletionForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearErrors(deletionForm);
  if (!deletionForm.confirm.checked) {
    showError(deletionForm, { code: "invalid", field: "confirm", message: "" }, {}, t("deletion_confirm_needed"));
    return;
  }
  const { error } = await post("/api/v1/mobile/my-data/deletion", { json: {}, signedBy: device, session: true });
  if (error) return showError(deletionForm, error);
  alert(t("deletion_done"));
  location.assign(`/m/activate?lang=${lang}`);
});

await show();
