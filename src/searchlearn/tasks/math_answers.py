"""Final answers of math solutions: extraction, normalization and grading.

Extraction, in order of priority: the last `\\boxed{...}` (nested braces kept whole; also `\\fbox` and `\\boxed 5`),
then the last `#### n` line (GSM8K), then the last "the (final) answer is ...".

Normalization (`normalize_answer`) maps the surface forms of one value to one string, after the normalizers of
Hendrycks et al. 2021 (MATH) and Lewkowycz et al. 2022 (Minerva): `$` and `\\$` dropped, `\\dfrac`/`\\tfrac` ->
`\\frac`, `\\left`/`\\right` and TeX spacing dropped, units (`\\text{ cm}`, "5 apples"), percent signs and degrees
dropped, "x = 5" -> "5", thousands separators removed ("1,000" -> "1000"), and every exact number — integer, decimal,
`a/b`, `\\frac{a}{b}` (negative too) — written as its reduced fraction ("0.5", "1/2", "\\frac{2}{4}" -> "1/2").

Grading (`is_equivalent`): equal normal forms are correct; two different numbers are wrong; anything else is
decided by math-verify (symbolic equivalence with sympy: "\\sqrt{2}/2" = "\\frac{\\sqrt 2}{2}", "x+1" = "1+x"),
when the package is installed. Nothing here evaluates text as code, and nothing raises on model output.
"""

from __future__ import annotations

import re
import threading
from fractions import Fraction

MAX_ANSWER_CHARS = 300  # longer "answers" are not handed to the symbolic grader

_BOXED = re.compile(r"\\(boxed|fbox)")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_ANSWER_IS = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*([^\n]*)", re.IGNORECASE)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), or of `\\boxed 5`; None if none."""
    matches = list(_BOXED.finditer(text))
    for m in reversed(matches[-8:]):  # the last few: an unbalanced one falls back to the one before
        i = m.end()
        if text[i : i + 1] == "{":
            depth = 0
            for j in range(i, len(text)):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j].strip()
            continue  # unbalanced: try an earlier one
        if text[i : i + 1] == " ":
            rest = re.match(r" +([^\s$]+)", text[i:])
            if rest:
                return rest.group(1)
    return None


def extract_answer(text: str) -> str | None:
    """The final answer written in `text` (see the module doc for the order of preference), or None."""
    if not isinstance(text, str):
        return None
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    for pattern in (_HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found:
            answer = found[-1].strip().rstrip(".").strip()
            answer = last_boxed(answer) or answer
            if answer:
                return answer.strip("$ ").strip()
    return None


# -- normalization --------------------------------------------------------------------------------------------
_REMOVE = ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\displaystyle", "^\\circ", "^{\\circ}", "\u00b0",
           "\\%", "%", "\\$", "$")
_TEXT = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_UNIT_TAIL = re.compile(r"([+-]?(?:\d[\d,]*\.?\d*|\.\d+))\s+[A-Za-z][A-Za-z .]*(?:\^\d)?")


def _strip_units(s: str) -> str:
    """'5\\text{ cm}' -> '5', '12 dollars' -> '12', '\\text{Monday}' -> 'Monday' (text kept when it is the answer)."""
    without_text = _TEXT.sub("", s).strip()
    if _TEXT.search(s) and _NUMBER.fullmatch(without_text.replace(",", "")):
        return without_text
    s = _TEXT.sub(r"\1", s).strip()
    m = _UNIT_TAIL.fullmatch(s)
    return m.group(1) if m else s


def to_fraction(s: str) -> Fraction | None:
    """The exact value of an integer, decimal, a/b or \\frac{a}{b} (signs allowed), else None."""
    if _NUMBER.fullmatch(s):
        return Fraction(s)
    m = re.fullmatch(r"([+-]?)\\frac\{([+-]?\d+)\}\{([+-]?\d+)\}", s) or re.fullmatch(r"([+-]?)(\d+)/(\d+)", s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return -value if m.group(1) == "-" else value
    return None


def canonical_number(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def normalize_answer(answer: str) -> str:
    """One string per value (see the module doc); an empty string for an empty answer."""
    s = str(answer).strip().replace("\u2212", "-").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    inner = last_boxed(s)
    s = inner if inner is not None else s
    for token in _REMOVE:
        s = s.replace(token, "")
    s = s.replace("\\ ", " ").strip().rstrip(".").strip()
    if re.match(r"^[A-Za-z]\s*=", s):  # "x = 5" -> "5"
        s = s.split("=", 1)[1].strip()
    s = _strip_units(s)
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    s = re.sub(r"\s+", "", s)
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)  # \frac12 -> \frac{1}{2}
    s = re.sub(r"\\sqrt(\d+)", r"\\sqrt{\1}", s)  # \sqrt2 -> \sqrt{2}
    s = s.lstrip("+") if to_fraction(s) is not None else s
    value = to_fraction(s)
    return canonical_number(value) if value is not None else s


# -- grading --------------------------------------------------------------------------------------------------
def _math_verify(gold: str, pred: str) -> bool | None:
    """math-verify's judgement, or None when the package is missing. Its timeouts use SIGALRM, which exists only on
    the main thread: elsewhere it runs without one."""
    try:
        from math_verify import parse, verify
    except ImportError:
        return None
    main = threading.current_thread() is threading.main_thread()
    timeout = 5 if main else None
    try:
        g = parse(f"${gold}$", parsing_timeout=timeout)
        p = parse(f"${pred}$", parsing_timeout=timeout)
        return bool(g and p and verify(g, p, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 — the grader never raises on model text
        return False


def is_equivalent(pred: str, gold: str) -> bool:
    """Whether the answer `pred` is the value `gold` (both raw answer strings, e.g. from `extract_answer`)."""
    a, b = normalize_answer(pred), normalize_answer(gold)
    if not a:
        return False
    if a == b:
        return True
    if to_fraction(a) is not None and to_fraction(b) is not None:
        return False  # two different exact numbers
    if len(pred) > MAX_ANSWER_CHARS:
        return False
    return bool(_math_verify(gold, pred))
