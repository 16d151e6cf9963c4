"""The pages' languages: English (the source text) and Chinese, from Babel
message catalogs (``locale/zh/LC_MESSAGES/messages.po``, compiled to ``.mo`` and
shipped as package data; ``tests/test_web_pages.py`` checks the ``.mo`` is current
and every message has its translation). ``?lang=`` or the browser's
Accept-Language chooses."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel import Locale, negotiate_locale
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("zh", "en")
DEFAULT = "en"


@cache
def translations(lang: str) -> NullTranslations:
    if lang == "en":
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def choose(query: str | None, remembered: str | None, accept: str | None) -> str:
    """?lang= first, then the language the session remembers, then Accept-Language."""
    for value in (query, remembered):
        if value in LANGUAGES:
            return value
    if accept:
        wanted = []
        for part in accept.split(","):
            tag = part.split(";")[0].strip().replace("-", "_")
            if tag:
                wanted.append(tag)
                wanted.append(tag.split("_")[0])
        chosen = negotiate_locale(wanted, list(LANGUAGES))
        if chosen:
            return chosen
    return DEFAULT


def html_lang(lang: str) -> str:
    """The page's lang attribute (zh-Hans for the Chinese catalog)."""
    return "zh-Hans" if lang == "zh" else str(Locale.parse(lang))


def compile_catalogs() -> list[Path]:
    """Compile every messages.po to messages.mo (what `make` and the test run)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written = []
    for po in sorted(LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")):
        with po.open("rb") as fh:
            catalog = read_po(fh)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as fh:
            write_mo(fh, catalog)
        written.append(mo)
    return written
