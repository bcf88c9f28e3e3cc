"""Turn arbitrary text (model file names, tensor names, op names) into safe C/C++ source pieces.

Model and tensor names come from files users downloaded: they may hold quotes, ``*/``, backslashes,
newlines, ``??/`` trigraphs or any Unicode. Everything that reaches generated C goes through one of
these functions, so nothing in a name can end a comment, a string or a line, or inject code.
All output is plain ASCII, valid as C99 and as C++11.
"""

from __future__ import annotations

import re
import unicodedata

# C11 and C++20 keywords plus the alternative operator spellings of C++ (and, not, or, ...).
_KEYWORD_TEXT = """
    auto break case char const continue default do double else enum extern float for goto if inline int
    long register restrict return short signed sizeof static struct switch typedef union unsigned void
    volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert
    _Thread_local alignas alignof and and_eq asm bitand bitor bool catch char8_t char16_t char32_t class
    compl concept consteval constexpr constinit const_cast co_await co_return co_yield decltype delete
    dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq nullptr operator
    or or_eq private protected public reinterpret_cast requires static_assert static_cast template this
    thread_local throw true try typeid typename using virtual wchar_t xor xor_eq
"""
C_KEYWORDS = frozenset(_KEYWORD_TEXT.split())
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]+")
_MAX_IDENT = 63  # C99 guarantees 63 significant characters for internal identifiers


def c_identifier(text: str, *, default: str = "model", prefix: str = "m_") -> str:
    """A valid, non-reserved C and C++ identifier derived from ``text``.

    Accents are folded to ASCII, every other run of non-identifier characters becomes one ``_``,
    leading/trailing and doubled underscores are dropped (``_X`` and ``__`` are reserved to the
    implementation), a leading digit or a keyword gets ``prefix``/``_`` added.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ident = _NOT_IDENT.sub("_", ascii_text)
    ident = re.sub(r"_{2,}", "_", ident).strip("_")
    if not ident:
        ident = default
    if ident[0].isdigit():
        ident = prefix + ident
    ident = ident[:_MAX_IDENT].rstrip("_")
    if ident in C_KEYWORDS:
        ident += "_"
    return ident


def c_macro_name(text: str, *, default: str = "MODEL") -> str:
    """An upper-case identifier for macros and include guards (never a keyword: keywords are lower case)."""
    return c_identifier(text, default=default.lower(), prefix="M_").upper()


def c_comment_text(text: str, *, max_len: int | None = 200) -> str:
    """Text that is safe inside ``/* ... */``: one printable-ASCII line with no comment delimiters.

    Non-ASCII characters become ``\\uXXXX`` spellings (inside a comment they are inert), ``*/`` and
    ``/*`` are broken apart, ``??`` is split so no trigraph survives, and a trailing backslash
    cannot splice lines because newlines are gone. ``max_len`` None keeps the whole text.
    """
    out = []
    for ch in text:
        code = ord(ch)
        if 0x20 <= code < 0x7F:
            out.append(ch)
        elif ch in "\t\r\n":
            out.append(" ")
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    s = "".join(out)
    while "*/" in s or "/*" in s:
        s = s.replace("*/", "* /").replace("/*", "/ *")
    while "??" in s:
        s = s.replace("??", "? ?")
    if max_len is not None and len(s) > max_len:
        s = s[: max_len - 3] + "..."
        # the cut may have left a lone '/' or '*' next to the dots; neither pairs with '.'
    return s


def c_string_literal(text: str | bytes) -> str:
    """A double-quoted C/C++ string literal holding exactly the UTF-8 bytes of ``text``.

    Printable ASCII passes through except ``"``, ``\\`` and ``?`` (escaped, so no trigraph can form);
    every other byte is a three-digit octal escape, which (unlike ``\\x``) can never swallow the
    characters that follow it.
    """
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    out = ['"']
    for b in data:
        if b in (0x22, 0x5C, 0x3F):
            out.append("\\" + chr(b))
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
    out.append('"')
    return "".join(out)


_SECTION_RE = re.compile(r"[A-Za-z_.$][A-Za-z0-9_.$]*")


def is_section_name(name: str) -> bool:
    """Whether ``name`` is a linker section name we can place in an attribute and in assembly as-is."""
    return bool(_SECTION_RE.fullmatch(name)) and len(name) <= 128
