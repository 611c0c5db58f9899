"""A CJK font for the slip PDF: Chinese must render wherever the platform runs, so the font is embedded (subset).

``MEDPAY_CJK_FONT`` names a TrueType/OpenType file (``path`` or ``path#index`` for a collection); otherwise the
first of the known locations that exists — Debian's ``fonts-noto-cjk`` (which ``scripts/ensure-cjk-font``, run by
``make run`` and ``make test``, installs) and ``fonts-wqy-microhei``/``zenhei``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KNOWN = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # in the collection: JP, KR, SC, …
    ("/usr/share/fonts/opentype/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
)


class NoCjkFont(RuntimeError):
    """No CJK font on this machine: a slip can't be drawn."""


@dataclass(frozen=True)
class FontFile:
    path: Path
    index: int  # the face in a collection (.ttc); 0 for a single font


def cjk_font() -> FontFile:
    setting = os.environ.get("MEDPAY_CJK_FONT", "").strip()
    if setting:
        path, _, index = setting.partition("#")
        if not Path(path).is_file():
            raise NoCjkFont(f"MEDPAY_CJK_FONT names {path!r}, which is not a file")
        return FontFile(Path(path), int(index) if index.isdigit() else 0)
    for path, index in KNOWN:
        if Path(path).is_file():
            return FontFile(Path(path), index)
    raise NoCjkFont("no CJK font is installed: run scripts/ensure-cjk-font (apt-get install fonts-noto-cjk), or "
                    "set MEDPAY_CJK_FONT to a TrueType/OpenType file with Chinese glyphs")
