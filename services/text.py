"""Marks user-visible text for the catalogs without translating it; the bot translates at the edge."""


def N_(message: str) -> str:  # noqa: N802  (the gettext convention)
    """Return `message` unchanged; `pybabel extract -k N_` collects it into the catalogs."""
    return message
