// 预约挂号: the open slots of the next days by hospital and department, the patient's (or a family member's)
// bookings with their queue numbers, booking (the fee settled at once) and cancelling within the hospital's rule.
import { clearErrors, lang, post, showError, showHolder, t, toFen, yuan } from "./mobile.js";
import { loadDevice } from "./device.js";
import { forPath, offerFamily } from "./whom.js";

const section = document.getElementById("book");
const status = section.querySelector("[data-status]");
const done = section.querySelector("[data-done]");
const instSelect = document.getElementById("inst");
const deptSelect = document.getElementById("dept");
const daySelect = document.getElementById("day");
const device = await loadDevice().catch(() => undefined);
let member = "";
let slots = [];

const dayOf = (iso) => new Date(iso).toLocaleDateString("en-CA", { timeZone: "Asia/Shanghai" });  // yyyy-mm-dd
const dayName = (day) => new Date(`${day}T12:00:00+08:00`).toLocaleDateString(lang === "en" ? "en-GB" : "zh-CN",
  { month: "short", day: "numeric", weekday: "short" });
const when = (iso) => new Date(iso).toLocaleString(lang === "en" ? "en-GB" : "zh-CN",
  { month: "short", day: "numeric", weekday: "short", hour: "2-digit", minute: "2-digit" });
const call = (path, options = {}) =>
  post(forPath(path, member), { signedBy: device, session: Boolean(member), ...options });

function el(tag, className, textContent) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (textContent !== undefined) node.textContent = textContent;
  return node;
}

function button(label, onClick) {
  const b = el("button", "", label);
  b.type = "button";
  b.addEventListener("click", async () => {
    if (b.disabled) return;  // a second tap while the first is under way does nothing
    b.disabled = true;
    try {
      await onClick(b);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function bookingItem(b) {
  const li = el("li", "visit");
  li.dataset.booking = b.booking_id;
  li.append(el("h3", "", `${b.fixmedins_name} · ${b.slot.dept_name} · ${b.slot.doctor_name}`),
            el("p", "meta", when(b.slot.begntime)),
            el("span", `tag${b.state === "cancelled" ? " cancelled" : ""}`, t(`book_state_${b.state}`)));
  if (b.state === "booked") li.append(el("p", "amount", t("book_queue", { n: b.queue_no })));
  if (b.cancellable) {
    li.append(el("p", "hint", t("book_cancel_until", { time: when(b.slot.cancel_until) })),
              button(t("book_cancel"), async () => {
                clearErrors(section);
                const { error } = await call(`/api/v1/mobile/bookings/${encodeURIComponent(b.booking_id)}/cancel`,
                                             { json: {} });
                if (error) return showError(section, error);
                done.textContent = t("book_cancelled_done");
                done.hidden = false;
                await refresh();
              }));
  } else if (b.state === "booked") {
    li.append(el("p", "hint", t("book_no_cancel")));
  }
  return li;
}

function slotItem(s) {
  const li = el("li", "visit");
  li.dataset.slot = s.slot_id;
  const fee = yuan(toFen(s.reg_fee));
  li.append(el("h3", "", `${s.dept_name} · ${s.doctor_name}${s.doctor_title ? `（${s.doctor_title}）` : ""}`),
            el("p", "meta", `${when(s.begntime)} · ${s.fixmedins_name}`),
            el("p", "", `${t("book_fee", { fee })} · ${s.left ? t("book_left", { n: s.left }) : t("book_full")}`));
  if (s.left) {
    li.append(button(t("book_confirm", { fee }), async (b) => {
      clearErrors(section);
      done.hidden = true;
      b.textContent = t("book_working");
      const { data, error } = await call("/api/v1/mobile/bookings", { json: { slot_id: s.slot_id } });
      b.textContent = t("book_confirm", { fee });
      if (error) return showError(section, error);
      done.textContent = t("book_done", { n: data.queue_no });
      done.hidden = false;
      done.focus?.();
      await refresh();
    }));
  }
  return li;
}

function fillFilters() {
  const keep = [instSelect.value, deptSelect.value];
  const insts = new Map(slots.map((s) => [s.fixmedins_code, s.fixmedins_name]));
  instSelect.replaceChildren(new Option(t("book_all"), ""), ...[...insts].map(([c, n]) => new Option(n, c)));
  instSelect.value = insts.has(keep[0]) ? keep[0] : "";
  const depts = new Map(slots.filter((s) => !instSelect.value || s.fixmedins_code === instSelect.value)
    .map((s) => [s.dept_code, s.dept_name]));
  deptSelect.replaceChildren(new Option(t("book_all"), ""), ...[...depts].map(([c, n]) => new Option(n, c)));
  deptSelect.value = depts.has(keep[1]) ? keep[1] : "";
  const days = [...new Set(slots.map((s) => dayOf(s.begntime)))];
  const day = daySelect.value;
  daySelect.replaceChildren(new Option(t("book_all"), ""), ...days.map((d) => new Option(dayName(d), d)));
  daySelect.value = days.includes(day) ? day : "";
}

function showSlots() {
  const shown = slots.filter((s) => (!instSelect.value || s.fixmedins_code === instSelect.value)
                                    && (!deptSelect.value || s.dept_code === deptSelect.value)
                                    && (!daySelect.value || dayOf(s.begntime) === daySelect.value));
  status.textContent = shown.length ? "" : t("book_none");
  section.querySelector("[data-slots]").replaceChildren(...shown.map(slotItem));
}

async function refresh() {
  const [mine, open] = await Promise.all([call("/api/v1/mobile/bookings", { method: "GET" }),
                                          call("/api/v1/mobile/slots", { method: "GET" })]);
  const card = section.querySelector("[data-mine-card]");
  const live = (mine.data ?? []).filter((b) => b.state !== "cancelled").slice(0, 10);
  card.hidden = !live.length;
  section.querySelector("[data-mine]").replaceChildren(...live.map(bookingItem));
  if (mine.error || open.error) return showError(section, mine.error ?? open.error);
  slots = open.data;
  fillFilters();
  showSlots();
}

if (!device) {
  document.querySelector("[data-not-activated]").hidden = false;
} else {
  showHolder(device);
  instSelect.addEventListener("change", () => { fillFilters(); showSlots(); });
  deptSelect.addEventListener("change", showSlots);
  daySelect.addEventListener("change", showSlots);
  offerFamily(device, document.getElementById("whom"), section.querySelector("[data-whom]"), (psn) => {
    member = psn;
    done.hidden = true;
    refresh();
  });
  section.hidden = false;
  await refresh();
}
