"""Text cells that a spreadsheet program will not run: OWASP's rule against CSV (formula) injection.

Names and schools come from a coordinator's CSV import, so a cell may hold `=cmd|' /C calc'!A0`.
Excel and LibreOffice read a cell starting with `=`, `+`, `-` or `@` as a formula (tab and CR are
skipped before that check), in CSV as well as when someone edits an XLSX cell and presses Enter.
"""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def formula_like(text: str) -> bool:
    return text.startswith(FORMULA_STARTS)


def as_text(text: str) -> str:
    """The text for a CSV cell: with a leading `'` when a spreadsheet would read it as a formula.

    Only for text; numbers are formatted by the caller and never passed here, so `-12,50` stays a number.
    """
    return "'" + text if formula_like(text) else text
