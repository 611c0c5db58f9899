// The camera filming a liveness challenge, shared by the face kiosk and the app's selfie enrolment: the
// instructions ask for each step in turn (rest, step 1, step 2 …, rest) while frames are grabbed as JPEG, and the
// frames leave the page once, in a multipart body built here so that a signature covers exactly the bytes sent.
// Nothing is kept: the stream stops when filming ends.
import { t, text } from "./mobile.js";

const FRAME_MS = 200;  // a frame every 200 ms while the person acts: ~25 frames for two steps
const REST_MS = 1000;  // the resting face before the first step (the platform compares a frame at rest)
const STEP_MS = 1600;  // time given for each action
const END_MS = 800;  // rest after the last action (a blink must reopen)

let stream = null;

export function stopCamera() {
  for (const track of stream?.getTracks() ?? []) track.stop();
  stream = null;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function openCamera(video) {
  stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, facingMode: "user" },
                                                         audio: false });
  video.srcObject = stream;
  await video.play();
}

function grab(video, canvas) {
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9))
    .then((blob) => blob.arrayBuffer()).then((buffer) => new Uint8Array(buffer));
}

/** Frames (JPEG bytes) of `video`'s camera while `instruction` asks for each step of `challenge` in turn (the
 * page's words "rest", "step", "captured" and its `actions`). Throws when the camera can't be opened. */
export async function filmChallenge(video, challenge, instruction) {
  try {
    await openCamera(video);
    const canvas = document.createElement("canvas");
    const plan = [[REST_MS, t("rest")]];
    challenge.forEach((step, i) => plan.push([STEP_MS, t("step", { n: i + 1, action: text.actions[step.action] })]));
    plan.push([END_MS, t("rest")]);
    const frames = [];
    for (const [ms, words] of plan) {
      instruction.textContent = words;
      const until = performance.now() + ms;
      while (performance.now() < until) {
        frames.push(grab(video, canvas));
        await sleep(FRAME_MS);
      }
    }
    instruction.textContent = t("captured");
    return await Promise.all(frames);
  } finally {
    stopCamera();
  }
}

/** multipart/form-data of text `fields` and the JPEG `files` named `<prefix>0`, `<prefix>1` …, as bytes. */
export function multipart(fields, files, prefix = "frame") {
  const boundary = `mpface${crypto.randomUUID().replaceAll("-", "")}`;
  const encode = (s) => new TextEncoder().encode(s);
  const parts = Object.entries(fields).map(([name, value]) =>
    encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  files.forEach((bytes, i) => {
    parts.push(encode(`--${boundary}\r\nContent-Disposition: form-data; name="${prefix}${i}"; ` +
                      `filename="${prefix}${i}.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`), bytes, encode("\r\n"));
  });
  parts.push(encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => { body.set(p, at); return at + p.length; }, 0);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}
