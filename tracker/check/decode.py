"""Decoding a fetched body to text: a BOM, valid UTF-8, the HTTP charset, the page's own, then windows-1252.

The body is hostile input in any encoding, or none: binary content and undecodable garbage are
refused (NotText) before any parser sees them. BeautifulSoup's UnicodeDammit decides the encoding
only when the page is not UTF-8 (imported then, not at start-up).
"""

from __future__ import annotations

import re

from tracker.check.blocks import EmptyPage, NotText

_CHARSET_HEADER = re.compile(r"charset=[\"']?([\w.:-]+)", re.I)
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Control characters other than tab, newline, carriage return and form feed (the bytes \x0b and \x0c
# count as text, as they always have here), deleted by bytes.translate to count them at C speed.
_CONTROL_BYTES = bytes(range(9)) + bytes(range(14, 32))


def _count_controls(data: bytes) -> int:
    """How many bytes of data are control characters (see _CONTROL_BYTES)."""
    return len(data) - len(data.translate(None, _CONTROL_BYTES))


def decode(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode a page body: a BOM, valid UTF-8, the HTTP charset, the page's own, then windows-1252."""
    text, encoding, _ = decode_body(body, content_type)
    return text, encoding


_UTF8_NAMES = frozenset({"utf-8", "utf8", "unicode-1-1-utf-8", "x-unicode20utf8"})


def _declares_utf8(body: bytes, content_type: str | None) -> bool:
    """Whether the page says it is UTF-8: the HTTP charset, or when that says nothing, the page's own <meta>."""
    if content_type and (m := _CHARSET_HEADER.search(content_type)):
        return m.group(1).lower() in _UTF8_NAMES
    from bs4.dammit import EncodingDetector  # (only pages that are not valid UTF-8 get here)

    meta = EncodingDetector.find_declared_encoding(body, is_html=True)
    return meta is not None and meta.lower() in _UTF8_NAMES


def _mostly_utf8(body: bytes, content_type: str | None) -> str | None:
    """A page declared UTF-8 with a few invalid bytes, decoded as a browser does (U+FFFD for each), else None.

    One stray byte (a windows-1252 quote pasted into a UTF-8 page) must not turn every accented
    letter of the page into mojibake, a false change in every block. A page only labelled UTF-8 but
    written in windows-1252 has no valid multi-byte sequence at all: it goes on to the charset
    detection, as before. The evidence: more valid non-ASCII characters than invalid sequences.
    """
    if not _declares_utf8(body, content_type):
        return None
    text = body.decode("utf-8", "replace")
    bad = text.count("\ufffd") - body.count(b"\xef\xbf\xbd")  # (not a U+FFFD the page itself holds)
    valid = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if valid > bad else None


def decode_body(body: bytes, content_type: str | None) -> tuple[str, str, bool]:
    """decode(), and whether the text is the whole body read as UTF-8 (then the parser can take the body)."""
    whole_utf8 = False
    if not body or body.isspace():  # (body.strip() would copy the whole body to find out)
        raise EmptyPage("the response was empty")
    text: str | None = None
    encoding = "utf-8"
    # A byte order mark wins over any declaration (as in browsers).
    for bom, enc in _BOMS:
        if body.startswith(bom):
            try:
                text, encoding = body[len(bom):].decode(enc), enc
            except UnicodeDecodeError:
                pass
            break
    if text is None:
        sample = body[:8192]
        # Binary content has NUL bytes or a high share of control bytes; HTML has neither.
        controls = _count_controls(sample)
        if b"\x00" in sample or controls > len(sample) // 20:
            raise NotText(f"the response is not text ({controls} control bytes in the first {len(sample)})")
        try:
            # Valid UTF-8 with non-ASCII bytes is never an accident: it wins over a wrong header.
            text = body.decode("utf-8")
            whole_utf8 = True
        except UnicodeDecodeError:
            text = _mostly_utf8(body, content_type)
        if text is None:
            declared = []
            if content_type and (m := _CHARSET_HEADER.search(content_type)):
                declared.append(m.group(1))
            # Undeclared or wrongly declared: the page's own <meta>, then windows-1252 (the web's
            # default for undeclared pages) before any statistical guess.
            # bs4 is imported here, not at the top: only pages that are not UTF-8 need it (~60 ms per crawl).
            from bs4 import UnicodeDammit
            from bs4.dammit import EncodingDetector

            if (meta := EncodingDetector.find_declared_encoding(body, is_html=True)) is not None:
                declared.append(meta)
            # (UnicodeDammit tries user_encodings before the page's own declaration: pass both as definite.)
            dammit = UnicodeDammit(body, known_definite_encodings=[d for d in declared if "utf" not in d.lower()],
                                   user_encodings=["windows-1252"], is_html=True)
            if dammit.unicode_markup is None:
                raise NotText("the response could not be decoded in any known encoding") from None
            text, encoding = dammit.unicode_markup, dammit.original_encoding or "windows-1252"
    assert text is not None
    bad = text.count("\ufffd")
    if bad > max(16, len(text) // 50):
        raise NotText(f"the response decodes to {bad} replacement characters: garbage or a wrong charset")
    # In UTF-8 every control character is its own single byte and every other character's bytes are
    # >= 0x80 or printable, so counting bytes counts characters (surrogatepass: a lone surrogate is text).
    controls = _count_controls(text[:8192].encode("utf-8", "surrogatepass"))
    if controls > len(text[:8192]) // 20:
        raise NotText(f"the response is not text ({controls} control characters in the first {len(text[:8192])})")
    return text, encoding, whole_utf8
