"""Pure: does a word end a sentence?  A full stop after an abbreviation, an initial or a number
usually does not ("Mr. Smith", "St. Claude", "e.g. this", "J. R. R. Tolkien", "3.5", "т. е.",
"ул. Ленина"); English and Russian.

Abbreviations come in two kinds: those that never end a sentence because a name or more words
always follow (titles, "e.g.", "ул."), and those that end one only when the next word starts a
new sentence, i.e. begins with a capital ("etc.", "a.m.", "г.": "in 1999 г. Потом…").
"""

from __future__ import annotations

import re

ENDS = (".", "?", "!", "…", "。", "？", "！")

NEVER = frozenset(
    {
        # English titles and words that precede a name or a number
        "mr", "mrs", "ms", "dr", "prof", "st", "mt", "ft", "gen", "col", "capt", "lt", "sgt",
        "rev", "hon", "gov", "sen", "pres", "messrs", "fig", "figs", "vol", "vols", "ca",
        "approx", "dept", "ave", "blvd",
        # English abbreviations read inside a sentence
        "e.g", "i.e", "eg", "ie", "vs", "cf", "viz", "incl", "esp", "resp",
        # Russian: what a name, a number or more words always follow ("т. е.", "т. к.",
        # "т. н." come as two words: "т." and then "е.", "к.", "н.")
        "ул", "просп", "пер", "пл", "наб", "им", "см", "ср", "напр", "рис", "табл", "стр",
        "гл", "проф", "акад", "доц", "т", "е", "к", "н", "т.е", "т.к", "т.н", "т.ч", "т.о",
        "и.о", "гр", "тов", "св", "кв", "корп",
    }
)  # fmt: skip
"""Never a sentence end (compared lower-case, without the final full stop)."""

CAPITAL_NEXT = frozenset(
    {
        "etc", "a.m", "p.m", "am", "pm", "inc", "ltd", "co", "corp", "jr", "sr", "bros",
        "u.s", "u.k", "u.n", "e.u", "ph.d", "phd", "no", "nos", "p", "pp", "al",
        "г", "гг", "в", "вв", "д", "п", "э", "т.д", "т.п", "др", "пр", "тыс", "млн", "млрд",
        "руб", "коп", "н.э", "мин", "сек", "ч", "км", "кг",
    }
)  # fmt: skip
"""A sentence end only when the next word begins with a capital letter."""

_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*\.$")
_INITIAL = re.compile(r"^\w\.$")
_DOTTED = re.compile(r"^(?:\w\.){2,}$")


def ends_sentence(word: str, following: str | None = None) -> bool:
    """Whether ``word`` (as Whisper gives it, with its leading space and punctuation) ends a
    sentence, given the ``following`` word (None at the end of the text)."""
    token = word.strip().strip("\"'»“”)]")
    if not token.endswith(ENDS):
        return False
    if not token.endswith(".") or token.endswith(".."):  # ? ! … and an ellipsis of dots
        return True
    bare = token.rstrip(".").lower()
    nxt = (following or "").strip().lstrip("\"'«“(")
    capital = nxt[:1].isupper()
    if bare in NEVER:
        return False
    if following is None:
        return True  # the last word of the text ends it, whatever it is
    if bare in CAPITAL_NEXT or _DOTTED.match(token.lower()):
        return capital
    if _INITIAL.match(token) and token[0].isupper():
        return False  # "J. R. R. Tolkien", "А. С. Пушкин"
    if _NUMBER.match(token):
        return capital and not nxt[:1].isdigit()  # "1. apples", "3. Mai" vs "in 1999. Then"
    return True
