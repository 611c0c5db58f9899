"""Request bodies that carry a photo of a code (terminal scans, the patient's app): their size limit and a
multipart/form-data reader; terminal and mobile doors read uploads the same way."""

from __future__ import annotations

from medpay.services.errors import Invalid

MAX_BODY_BYTES = 9 * 1024 * 1024  # an 8 MiB image plus the multipart framing
MAX_PARTS = 64  # the largest form is a face verification: 40 frames and 4 fields


def read_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """A small multipart/form-data reader (RFC 7578): text fields and file parts by name."""
    boundary = None
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise Invalid("body", "multipart/form-data without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise Invalid("body", "malformed multipart body (missing closing boundary)")
    if len(sections) - 2 > MAX_PARTS:  # refused before any part is parsed
        raise Invalid("body", f"{len(sections) - 2} parts in the form, at most {MAX_PARTS}")
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for section in sections[1:-1]:
        if not section.startswith(b"\r\n") or not section.endswith(b"\r\n"):
            raise Invalid("body", "malformed multipart body")
        head, sep, content = section[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise Invalid("body", "malformed multipart part (no blank line after the headers)")
        name = filename = None
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, _, value = line.partition(":")
            if header.strip().lower() != "content-disposition":
                continue
            for param in value.split(";")[1:]:
                k, _, v = param.strip().partition("=")
                v = v.strip().strip('"')
                if k.strip().lower() == "name":
                    name = v
                elif k.strip().lower() == "filename":
                    filename = v
        if not name:
            continue
        if name in fields or name in files:
            raise Invalid(name, "sent more than once")
        if filename is not None:
            files[name] = content
        else:
            try:
                fields[name] = content.decode("utf-8")
            except UnicodeDecodeError:
                raise Invalid(name, "not UTF-8 text") from None
    return fields, files
