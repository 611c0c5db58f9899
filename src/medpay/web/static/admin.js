// The admin door's policy pages: the staff key is asked for once per tab and kept in sessionStorage (never in a
// URL); the pages' data comes from the admin API with the key in the Authorization header. Everything shown is set
// as text (textContent), never as HTML.
const text = JSON.parse(document.getElementById("page-text").textContent);
const KEY = "medpay.staffKey";
const body = document.body;
const lang = body.dataset.lang;
const $ = (id) => document.getElementById(id);

function t(key, vars = {}) {
  return String(text[key] ?? key).replace(/\{(\w+)\}/g, (_, name) => vars[name] ?? "");
}

function el(tag, content = "", attrs = {}) {
  const node = document.createElement(tag);
  if (content) node.textContent = content;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function say(message) {
  $("message").textContent = message;
  $("message").hidden = !message;
}

function askForKey(message = "") {
  sessionStorage.removeItem(KEY);
  $("content").hidden = true;
  $("sign-out").hidden = true;
  $("key-form").hidden = false;
  say(message);
  $("staff-key").focus();
}

async function get(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", credentials: "omit",
                                   headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } });
  } catch {
    return { error: "network" };
  }
  const answer = await response.json().catch(() => null);
  if (response.ok) return { data: answer };
  if (response.status === 401 || response.status === 403) return { error: "auth" };
  if (response.status === 404) return { error: "not_found" };
  return { error: "*", detail: answer?.error?.message ?? "" };
}

function showPolicies(list) {
  const rows = document.querySelector("#policies tbody");
  rows.replaceChildren();
  for (const p of list) {
    const tr = el("tr");
    const name = el("td");
    const link = el("a", p.name, { href: `/admin/policies/${encodeURIComponent(p.policy_id)}?lang=${lang}` });
    name.append(link);
    tr.append(name, el("td", p.admdvs), el("td", p.version),
              el("td", `${p.effective_from} … ${p.effective_to ?? ""}`), el("td", String(p.tiers.length)));
    rows.append(tr);
  }
}

function safeHref(url) {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

function showPolicy(p) {
  $("policy-name").textContent = p.name;
  $("policy-id").textContent = `${p.policy_id} · ${t("source")}: ${p.source}`;
  const head = $("head");
  head.replaceChildren();
  for (const line of p.head) head.append(el("dt", line.label), el("dd", line.value));
  const refs = $("references");
  refs.replaceChildren();
  for (const ref of p.references) {
    const li = el("li");
    const href = safeHref(ref);
    li.append(href ? el("a", ref, { href, rel: "noreferrer noopener", target: "_blank" }) : el("span", ref));
    refs.append(li);
  }
  if (!p.references.length) refs.append(el("li", t("no_references")));
  const tiers = $("tiers");
  tiers.replaceChildren();
  for (const tier of p.tiers) {
    const box = el("section", "", { class: "tier", "data-tier": tier.code });
    const list = el("ul");
    for (const line of tier.lines) {
      const item = el("li", line.trim());
      if (line.startsWith(" ")) item.className = "sub";
      list.append(item);
    }
    box.append(el("h3", tier.title), list);
    tiers.append(box);
  }
  const examples = $("examples");
  examples.replaceChildren();
  if (!p.examples.length) examples.append(el("p", t("no_examples")));
  for (const ex of p.examples) {
    const box = el("section", "", { class: "example", "data-example": ex.name });
    const title = el("h3", ex.name);
    title.append(el("span", t(ex.passed ? "passed" : "failed"), { class: `badge ${ex.passed ? "pass" : "fail"}` }));
    box.append(title, el("p", `${t("source")}: ${ex.source}`, { class: "sub" }));
    if (ex.note) box.append(el("p", `${t("note")}: ${ex.note}`));
    if (ex.error) box.append(el("p", t("example_error", { error: ex.error }), { class: "message" }));
    const table = el("table");
    const headRow = el("tr");
    for (const h of ["field", "expected", "computed", ""]) headRow.append(el("th", h ? t(h) : ""));
    table.append(headRow);
    for (const a of ex.amounts) {
      const tr = el("tr", "", { "data-field": a.field });
      tr.append(el("td", `${a.label} (${a.field})`), el("td", a.expected, { class: "num" }),
                el("td", a.computed ?? "—", { class: "num" }),
                el("td", t(a.ok ? "passed" : "failed"), { class: a.ok ? "pass" : "fail" }));
      table.append(tr);
    }
    box.append(table);
    examples.append(box);
  }
}

async function load() {
  $("key-form").hidden = true;
  $("loading").hidden = false;
  say("");
  const page = body.dataset.page;
  const id = body.dataset.policyId;
  const path = page === "policy"
    ? `/api/v1/admin/policies/${encodeURIComponent(id)}?lang=${lang}` : "/api/v1/admin/policies";
  const { data, error, detail } = await get(path);
  $("loading").hidden = true;
  if (error === "auth") return askForKey(text.errors.auth);
  if (error) {
    say(`${text.errors[error].replace("{id}", id ?? "")}${detail ? ` (${detail})` : ""}`);
    $("sign-out").hidden = false;
    return;
  }
  if (page === "policy") showPolicy(data); else showPolicies(data);
  $("content").hidden = false;
  $("sign-out").hidden = false;
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("staff-key").value.trim());
  $("staff-key").value = "";
  load();
});
$("sign-out").addEventListener("click", () => askForKey());

if (sessionStorage.getItem(KEY)) load(); else askForKey();
