"""Numbers as people read them: Vietnamese first (comma decimal, dot thousands)."""

from __future__ import annotations


def format_number(value: float, decimals: int, lang: str) -> str:
    """35.25 → "35,3" in Vietnamese (comma decimal, dot thousands), "35.3" in English."""
    shown = f"{value:,.{decimals}f}"
    if lang == "en":
        return shown
    return shown.replace(",", "\0").replace(".", ",").replace("\0", ".")


def format_shortest(value: float, lang: str) -> str:
    """Only the decimals a limit needs: 80 → "80", 2.5 → "2,5" (vi), at most 6."""
    for decimals in range(7):
        if abs(round(value, decimals) - value) < 1e-9:
            return format_number(value, decimals, lang)
    return format_number(value, 6, lang)
