"""Checks that a ``report.md`` reads in five minutes (issue 16), shared by the report tests."""

from __future__ import annotations

import re

_CODE = re.compile(r"`[^`]*`")
_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")
_E_NOTATION = re.compile(r"\d[eE][-+]?\d")


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def _paragraphs(md: str) -> list[str]:
    """Blocks between blank lines, each list item on its own; tables and headings skipped."""
    out = []
    for block in md.split("\n\n"):
        lines = [ln for ln in block.splitlines() if ln.strip()]
        if not lines or all(ln.startswith(("|", "#", "![")) for ln in lines):
            continue
        cur: list[str] = []
        for ln in lines:
            if ln.startswith("- ") and cur:
                out.append(" ".join(cur))
                cur = []
            cur.append(ln)
        out.append(" ".join(cur))
    return out


def _bullets(section: str) -> list[str]:
    return [p[2:] for p in _paragraphs(section) if p.startswith("- ")]


def _check_numbers(text: str) -> None:
    """No e-notation; every decimal number has at most 3 significant digits."""
    plain = _CODE.sub("", text)
    assert not _E_NOTATION.search(plain), text
    for num in _DECIMAL.findall(plain):
        digits = num.lstrip("-").replace(".", "").lstrip("0")
        assert len(digits) <= 3, (num, text)


def check_short_report(md: str) -> None:
    """Key results first (1-6 bullets of one sentence, <= 45 words each), findings bullets of
    <= 90 words, no paragraph over 120 words, no e-notation and at most 3 significant digits
    in the decimals of the key results and findings."""
    key = _bullets(_section(md, "Key results"))
    assert 1 <= len(key) <= 6, key
    for k in key:
        assert len(k.split()) <= 45, k
        assert k.endswith(".") and not re.search(r"\.\s+[A-Z]", _CODE.sub("", k)), k
        _check_numbers(k)
    findings = _bullets(_section(md, "Findings"))
    assert findings
    for f in findings:
        assert len(f.split()) <= 90, f
        _check_numbers(f)
    for p in _paragraphs(md):
        assert len(p.split()) <= 120, p
    assert md.index("## Key results") < md.index("## Summary")
