"""How well the face model separates people, on a folder of labelled photos (``medpay face eval DIR``): one folder
per person, any number of photos each. Every pair of photos is compared: same folder → genuine pair, different
folders → impostor pair. A handful of photos measures nothing much: the counts are reported with every rate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from medpay.adapters.face import images
from medpay.adapters.face.port import FaceEncoder
from medpay.domain.face import ErrorRates, distance, error_rates

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


@dataclass
class Evaluation:
    threshold: float
    embeddings: dict[str, list[tuple[str, np.ndarray]]] = field(default_factory=dict)  # person → (photo, emb)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (photo, why)
    latency_ms: list[tuple[str, float]] = field(default_factory=list)  # per photo: decode + detect + embed
    genuine: list[float] = field(default_factory=list)
    impostor: list[float] = field(default_factory=list)

    @property
    def rates(self) -> ErrorRates:
        return error_rates(self.genuine, self.impostor, self.threshold)


def evaluate(folder: Path, encoder: FaceEncoder, threshold: float) -> Evaluation:
    ev = Evaluation(threshold)
    encoder.faces(np.zeros((8, 8, 3), np.uint8))  # load the model first: its loading is no photo's latency
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        for photo in sorted(p for p in person.iterdir() if p.suffix.lower() in SUFFIXES):
            name = f"{person.name}/{photo.name}"
            started = time.perf_counter()
            try:
                image = images.decode(photo.read_bytes())
            except images.ImageError as e:
                ev.skipped.append((name, e.message))
                continue
            faces = encoder.faces(image) or encoder.faces(image, upsample=1)
            if not faces:
                ev.skipped.append((name, "no face found"))
                continue
            emb = encoder.embed(image, faces[0])  # the largest face
            ev.latency_ms.append((name, (time.perf_counter() - started) * 1000))
            ev.embeddings.setdefault(person.name, []).append((name, emb))
    people = list(ev.embeddings.items())
    for i, (_, mine) in enumerate(people):
        for a in range(len(mine)):
            for b in range(a + 1, len(mine)):
                ev.genuine.append(distance(mine[a][1], mine[b][1]))
        for _, theirs in people[i + 1:]:
            ev.impostor += [distance(x[1], y[1]) for x in mine for y in theirs]
    return ev


def curve(ev: Evaluation, steps: int = 200) -> list[tuple[float, float, float]]:
    """(threshold, FMR, FNMR) from 0 to the largest distance seen."""
    top = max(ev.genuine + ev.impostor + [1.0])
    out = []
    for i in range(steps + 1):
        r = error_rates(ev.genuine, ev.impostor, top * i / steps)
        out.append((r.threshold, r.fmr, r.fnmr))
    return out


def plot(ev: Evaluation, path: Path) -> None:
    """A DET plot (FNMR against FMR, linear axes) with the configured threshold marked, and the two distance
    histograms underneath, as a PNG."""
    w, h, m = 640, 720, 60
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    side = w - 2 * m
    d.rectangle([m, m, m + side, m + side], outline="black")
    d.text((m, 20), f"DET: FNMR vs FMR ({len(ev.genuine)} genuine, {len(ev.impostor)} impostor pairs)", fill="black")
    d.text((m + side // 2 - 20, m + side + 8), "FMR", fill="black")
    d.text((8, m + side // 2), "FNMR", fill="black")
    pts = [(m + fmr * side, m + side - fnmr * side) for _, fmr, fnmr in curve(ev)
           if fmr == fmr and fnmr == fnmr]  # (nan ≠ nan: no pairs of a kind)
    if len(pts) > 1:
        d.line(pts, fill="blue", width=2)
    r = ev.rates
    if r.fmr == r.fmr and r.fnmr == r.fnmr:
        x, y = m + r.fmr * side, m + side - r.fnmr * side
        d.ellipse([x - 5, y - 5, x + 5, y + 5], outline="red", width=2)
        d.text((x + 8, y - 14), f"threshold {ev.threshold:.2f}", fill="red")
    top = m + side + 40
    d.text((m, top), "distance histogram: genuine (green), impostor (red)", fill="black")
    hist_h = h - top - 30
    bins = 40
    hi = max(ev.genuine + ev.impostor + [1.0])
    for values, colour in ((ev.genuine, "green"), (ev.impostor, "red")):
        if not values:
            continue
        counts, _ = np.histogram(values, bins=bins, range=(0, hi))
        peak = counts.max() or 1
        for i, c in enumerate(counts):
            x0 = m + i * side / bins
            d.rectangle([x0, top + 20 + hist_h - c / peak * hist_h, x0 + side / bins - 1, top + 20 + hist_h],
                        outline=colour)
    tx = m + ev.threshold / hi * side
    d.line([(tx, top + 20), (tx, top + 20 + hist_h)], fill="black")
    im.save(path, format="PNG")
