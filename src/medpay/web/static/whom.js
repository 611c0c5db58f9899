// Whose bills or records a page shows: the device's own person, or a family member the signed-in account acts for
// (家庭共济 / 代办). Shared by the bills and records pages.
import { post, setCsrf, t } from "./mobile.js";

/** Fill `select` with "me" and the family members in force, show `field`, and call `onChange(psn_no | "")` when
 * the choice changes. Nothing is shown when not signed in or without members. */
export async function offerFamily(device, select, field, onChange) {
  const { data } = await post("/api/v1/mobile/account", { method: "GET", session: true });
  const members = (data?.persons ?? []).filter((p) => p.relation !== "self" && p.status === "active");
  if (!members.length) return;
  setCsrf(data.csrf_token);
  select.replaceChildren(new Option(t("whom_self", { name: device.userName }), ""), ...members.map((m) =>
    new Option(t("whom_member", { name: m.name, relation: t(`relation_${m.relation}`) }), m.psn_no)));
  field.hidden = false;
  select.addEventListener("change", () => onChange(select.value));
}

/** `path` for `member` (a family member's psn_no), or for the device's own person when `member` is "". */
export const forPath = (path, member) =>
  (member ? `${path}${path.includes("?") ? "&" : "?"}for=${encodeURIComponent(member)}` : path);
