"""Which language a question is in, for ``[ask] language = "auto"``: German or English.

Small and honest: it counts words, nothing more. A word scores for German when it is one of
about a hundred common German words (articles, pronouns, question words, auxiliaries, the
words of a trading question) or holds ä, ö, ü or ß; it scores for English when it is one of
the English ones. Words both languages spell alike ("was", "will", "in", "performance") count
for neither. More German than English words: German; otherwise English, which is also the
answer when there is no evidence at all ("Status?"). Other languages are not recognised.
"""

from __future__ import annotations

import re

_GERMAN = """
    der die das den dem des ein eine einen einem einer eines kein keine keinen nicht nichts
    ich du er sie es wir ihr mein meine unser unsere unseren euer dein sich mir mich uns
    wie wer wo wann warum wieso weshalb welche welcher welches wieviel wieviele woher wohin
    ist sind bin bist seid war waren wird werden wurde wurden hat haben habe hast hatte hatten
    kann können soll sollte sollen muss müssen darf gibt gab geht ging läuft lief steht
    und oder aber auch noch schon nur sehr mehr viel viele wenig heute gestern morgen jetzt
    diese dieser dieses diesem diesen letzte letzten letzter letztes seit bis mit ohne für
    über unter vom zum zur beim im ins aus bei nach gegen um dass ob weil wenn als
    woche wochen monat tag tage stunde jahr gewinn verlust verluste rendite kapital stand
    handel handelt positionen offen offene risiko modell bitte danke gut schlecht
    """
_ENGLISH = """
    the a this that these those is are been being were has have had do does did done
    i you he she it we they my our your their me us them its
    what how who where when why which whose whom
    and or but not no only very more much many few today yesterday tomorrow now
    last since until with without for about over under from into of to at by on
    week weeks month day days hour year profit loss losses return returns equity going
    doing open positions risk model please thanks good bad there here any some
    """
GERMAN = frozenset(_GERMAN.split())
ENGLISH = frozenset(_ENGLISH.split())
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_UMLAUT = re.compile(r"[äöüß]")


def scores(text: str) -> tuple[int, int]:
    """(German words, English words) in ``text``."""
    de = en = 0
    for word in _WORD.findall(text.lower()):
        if word in GERMAN or _UMLAUT.search(word):
            de += 1
        elif word in ENGLISH:
            en += 1
    return de, en


def detect(text: str) -> str:
    """``de`` or ``en`` (see the module doc for how it decides)."""
    de, en = scores(text)
    return "de" if de > en else "en"


def answer_language(setting: str, question: str) -> str:
    """The language code to answer in: ``[ask] language``, or the question's for ``auto``."""
    lang = setting.strip().lower() or "auto"
    return detect(question) if lang == "auto" else lang.split("-")[0]
