// The device key: an Ed25519 key pair made here with WebCrypto, its private half non-extractable, kept in
// IndexedDB with the e-certificate it was activated for. Only the raw public key (64 hex digits) leaves the browser.

const DB = "medpay";
const STORE = "device";
const KEY = "current";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, work) {
  const open = indexedDB.open(DB, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  const db = await request(open);
  try {
    const tx = db.transaction(STORE, mode);
    const result = await request(work(tx.objectStore(STORE)));
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
    return result;
  } finally {
    db.close();
  }
}

/** {ecert_id, privateKey, publicKeyHex, userName, idNo} of the activated e-certificate, or undefined. */
export const loadDevice = () => withStore("readonly", (store) => store.get(KEY));

export const saveDevice = (device) => withStore("readwrite", (store) => store.put(device, KEY));

/** A face kiosk's own key, {privateKey, publicKeyHex, terminal_id, org_id, limit}, kept beside (never instead of)
 * a patient's device key. */
export const loadKiosk = () => withStore("readonly", (store) => store.get("kiosk"));

export const saveKiosk = (kiosk) => withStore("readwrite", (store) => store.put(kiosk, "kiosk"));

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

/** A new key pair; throws when this browser can't make Ed25519 keys (old browser, or not a secure context). */
export async function newDeviceKey() {
  if (!window.isSecureContext || !crypto.subtle) throw new Error("WebCrypto needs a secure context");
  const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  return { privateKey: keys.privateKey, publicKeyHex: hex(await crypto.subtle.exportKey("raw", keys.publicKey)) };
}

/** hex Ed25519 signature of `message` (UTF-8). */
async function sign(privateKey, message) {
  return hex(await crypto.subtle.sign({ name: "Ed25519" }, privateKey, new TextEncoder().encode(message)));
}

/** sha256 of a text (UTF-8) or of bytes (a multipart body built by the page). */
async function sha256hex(message) {
  const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

/** The headers that sign a request with the device key: X-Timestamp, a fresh X-Nonce and X-Signature of
 * "METHOD\npath\ntimestamp\nnonce\nsha256hex(body)" (path with its query, as sent), plus X-Ecert-Id once the
 * device holds an e-certificate, or X-Terminal-Id for a kiosk's key. Signatures go in headers, never in a URL. */
export async function signedHeaders(device, method, path, body) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const nonce = crypto.randomUUID().replaceAll("-", "");
  const message = [method, path, timestamp, nonce, await sha256hex(body)].join("\n");
  return { ...(device.ecert_id ? { "X-Ecert-Id": device.ecert_id } : {}),
           ...(device.terminal_id ? { "X-Terminal-Id": device.terminal_id } : {}), "X-Timestamp": timestamp,
           "X-Nonce": nonce, "X-Signature": await sign(device.privateKey, message) };
}
