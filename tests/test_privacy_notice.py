"""The privacy notice (Art. 13 DSGVO): the shipped template filled with the district's rules, a county's
own notice set with `python -m bot privacy set FILE`, and where people read it: /privacy (also before
they have a code), the short notice before the code, the pointer with the welcome.
"""

import json
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, col, select

from bot.cli.main import main
from bot.conversation.router import Conversation
from bot.i18n import Translator
from bot.messages import Incoming
from db.models import AuditEvent, District, PolicySetting
from db.uow import UnitOfWork
from services.demo import DEMO_NAME
from services.districts import create_district
from services.identities import link
from services.policy import set_rule
from tests.chat_world import NOW, make_demo

DE, EN = Translator("de"), Translator("en")
ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "services" / "privacy_notice"
INCOMPLETE = DE.gettext("The county has not completed this notice yet: the parts in [[…]] are missing.")
OWN = (
    "Datenschutzhinweise des Landkreises Heidekreis\n\n"
    "Verantwortlich: Landkreis Heidekreis, Vogteistraße 19, 29683 Bad Fallingbostel.\n"
    "Datenschutzbeauftragte: datenschutz@heidekreis.example\n"
    "Freie Texte löschen wir {retention_free_text} nach dem Termin; zugelassen: {platforms}.\n"
    "Klammern wie {diese} bleiben stehen."
)


def _district_id(engine: Engine) -> int:
    with UnitOfWork(engine) as uow:
        district_id = uow.session.exec(select(District.id).order_by(col(District.id))).first()
    assert district_id is not None
    return district_id


def _members(engine: Engine) -> Conversation:
    """The demo district with its school contact (German) on Telegram 1 and Rojin (English) on Telegram 3."""
    codes = make_demo(engine, NOW)
    with UnitOfWork(engine) as uow:
        for user, code, locale in (("1", codes.school, "de"), ("3", codes.rojin, "en")):
            link(
                uow.session,
                platform="telegram",
                user_id=user,
                chat_id=user,
                code=code,
                now=NOW,
                locale=locale,
            )
        uow.commit()
    return Conversation(engine, lambda: NOW)


def _say(talk: Conversation, user: str, text: str, hint: str = "de") -> list[str]:
    return [
        reply.text for reply in talk.handle(Incoming("telegram", user, user, text=text, language_hint=hint))
    ]


def _cli(monkeypatch: pytest.MonkeyPatch, engine: Engine, *argv: str) -> int:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BOT_LOCALE", "de")
    return main(list(argv))


def _notices(engine: Engine) -> dict[str, str]:
    with UnitOfWork(engine) as uow:
        rows = uow.session.exec(
            select(PolicySetting).where(col(PolicySetting.key).startswith("privacy_notice"))
        )
        return {row.key: row.value for row in rows}


# --- the shipped template ---------------------------------------------------------------------------


def test_privacy_shows_the_shipped_template_filled_with_the_districts_rules(engine: Engine) -> None:
    talk = _members(engine)
    [german] = _say(talk, "1", "/privacy")
    template = (TEMPLATES / "de.txt").read_text(encoding="utf-8")
    assert german == (
        INCOMPLETE
        + "\n\n"
        + template.replace("{district}", DEMO_NAME)
        .replace("{platforms}", "Telegram, Matrix")
        .replace("{retention_free_text}", "90 Tage")
        .replace("{retention_accounts}", "10 Jahre")
    )
    for line in (  # what Art. 13 asks for, each in the notice
        "1. Verantwortlich",
        "2. Datenschutzbeauftragte oder Datenschutzbeauftragter",
        "3. Zweck",
        "- Schulen: Art. 6 Abs. 1 Buchst. e DSGVO in Verbindung mit § 31 des Niedersächsischen Schulgesetzes "
        "(NSchG).",
        "- Dolmetscherinnen und Dolmetscher: Art. 6 Abs. 1 Buchst. b DSGVO, die Vereinbarung über die "
        "ehrenamtliche Tätigkeit.",
        "- Der Messenger, über den Sie schreiben. Der Landkreis lässt zu: Telegram, Matrix.",
        "- Freie Texte (Hinweise, eingetragene Orte und Links, Begründungen): bis 90 Tage nach dem Termin.",
        "Sie können sich bei der Aufsichtsbehörde beschweren: Die Landesbeauftragte für den Datenschutz "
        "Niedersachsen, Prinzenstraße 5, 30159 Hannover, poststelle@lfd.niedersachsen.de.",
    ):
        assert line in german.splitlines(), line
    assert "{" not in german

    # The rules change; the notice follows them the next time it is shown.
    with UnitOfWork(engine) as uow:
        district_id = _district_id(engine)
        set_rule(uow.session, district_id, "retention_free_text", "30d", actor="t", now=NOW)
        set_rule(uow.session, district_id, "retention_accounts", "400d", actor="t", now=NOW)
        set_rule(uow.session, district_id, "platforms", "telegram", actor="t", now=NOW)
        uow.commit()
    [again] = _say(talk, "1", "/datenschutz")  # the German word works too
    assert (
        "- Freie Texte (Hinweise, eingetragene Orte und Links, Begründungen): bis 30 Tage nach dem Termin."
        in (again.splitlines())
    )
    assert "400 Tage nach Ende des Haushaltsjahres" in again
    assert "Der Landkreis lässt zu: Telegram." in again

    [english] = _say(talk, "3", "/privacy", hint="en")  # Rojin reads English
    assert english.startswith(
        EN.gettext("The county has not completed this notice yet: the parts in [[…]] are missing.")
    )
    assert "- Free text (notes, typed places and links, reasons): up to 30 days after the session." in (
        english.splitlines()
    )
    assert "1. Controller" in english.splitlines()


# --- privacy set / show / reset ------------------------------------------------------------------------


def test_a_county_fills_the_template_and_sets_its_own_notice(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    talk = _members(engine)
    assert _cli(monkeypatch, engine, "privacy", "show", "--raw") == 0
    raw = capsys.readouterr().out
    assert raw == (TEMPLATES / "de.txt").read_text(encoding="utf-8")  # what the county copies and fills
    shown = tmp_path / "notice.txt"
    shown.write_text(raw, encoding="utf-8")

    refusals = {  # each refused with its sentence, exit 2, nothing stored
        "unfilled": (
            raw,
            "In den Datenschutzhinweisen sind noch 6 Platzhalter auszufüllen, der erste: [[Anschrift der "
            "Kreisverwaltung]]. Ersetzen Sie jedes [[…]] durch den Text des Landkreises.",
        ),
        "empty": (" \n\t\n", "Die Datenschutzhinweise sind leer."),
        "huge": ("x" * 20_001, "Die Datenschutzhinweise haben 20001 Zeichen; erlaubt sind höchstens 20000."),
    }
    for name, (text, sentence) in refusals.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text, encoding="utf-8")
        assert _cli(monkeypatch, engine, "privacy", "set", str(path)) == 2, name
        assert capsys.readouterr() == ("", sentence + "\n"), name
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Datenschutzhinweise für Schüler".encode("latin-1"))
    assert _cli(monkeypatch, engine, "privacy", "set", str(latin1)) == 2
    assert capsys.readouterr().err == f"„{latin1}“ ist kein UTF-8-Text.\n"
    assert _notices(engine) == {}

    own = tmp_path / "own.txt"
    own.write_text(
        "\ufeff" + OWN.replace("\n", "\r\n") + "\r\n\r\n", encoding="utf-8"
    )  # as Windows writes it
    assert _cli(monkeypatch, engine, "privacy", "set", str(own), "--district", "heidekreis") == 0
    assert capsys.readouterr().out == (
        f"Die Datenschutzhinweise von {DEMO_NAME} (Deutsch) sind gespeichert: {len(OWN)} Zeichen. "
        "/privacy zeigt sie im Chat, /start weist darauf hin.\n"
    )
    assert _notices(engine) == {"privacy_notice:de": OWN}
    filled = OWN.replace("{retention_free_text}", "90 Tage").replace("{platforms}", "Telegram, Matrix")
    assert _say(talk, "1", "/privacy") == [filled]
    assert _say(talk, "3", "/privacy", hint="en") == [  # the county's own German notice wins over a template
        OWN.replace("{retention_free_text}", "90 days").replace("{platforms}", "Telegram, Matrix")
    ]
    assert _cli(monkeypatch, engine, "privacy", "show") == 0
    assert capsys.readouterr().out == filled + "\n\n"
    assert _cli(monkeypatch, engine, "privacy", "show", "--raw") == 0
    assert capsys.readouterr().out == OWN + "\n"

    english = tmp_path / "en.txt"
    english.write_text(
        "Privacy notice of Heidekreis: free text goes after {retention_free_text}.", encoding="utf-8"
    )
    assert _cli(monkeypatch, engine, "privacy", "set", str(english), "--language", "en") == 0
    capsys.readouterr()
    assert _say(talk, "3", "/privacy", hint="en") == [
        "Privacy notice of Heidekreis: free text goes after 90 days."
    ]
    assert _say(talk, "1", "/privacy") == [filled]

    assert _cli(monkeypatch, engine, "privacy", "reset") == 0
    assert capsys.readouterr().out == (
        "Die Datenschutzhinweise (Deutsch) sind auf die Vorlage zurückgesetzt, die mit dem Bot kommt.\n"
    )
    assert _say(talk, "1", "/privacy")[0].startswith(INCOMPLETE)
    assert _cli(monkeypatch, engine, "privacy", "reset") == 0
    assert capsys.readouterr().out == (
        "Es waren keine Datenschutzhinweise (Deutsch) gespeichert; gezeigt wird die Vorlage, "
        "die mit dem Bot kommt.\n"
    )
    with UnitOfWork(engine) as uow:
        audit = uow.session.exec(
            select(AuditEvent.action, AuditEvent.detail)
            .where(col(AuditEvent.action).startswith("privacy_notice"))
            .order_by(col(AuditEvent.id))
        ).all()
    assert [(action, json.loads(detail or "{}")) for action, detail in audit] == [
        ("privacy_notice.set", {"characters": len(OWN), "language": "de"}),
        ("privacy_notice.set", {"characters": 73, "language": "en"}),
        ("privacy_notice.reset", {"language": "de"}),
    ]  # that it changed, not the text


# --- before the code, and with the welcome ---------------------------------------------------------------


def _rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return sum(
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in SQLModel.metadata.sorted_tables
        )


def test_a_stranger_reads_the_notice_before_the_code_and_is_pointed_to_it_once_after(engine: Engine) -> None:
    codes = make_demo(engine, NOW)
    talk = Conversation(engine, lambda: NOW)
    before = _rows(engine)
    short = DE.render(
        "Privacy: {district} is responsible for this bot. It stores your chat account only once you join "
        "with a code, and then only what the pool needs. /privacy shows the full notice.",
        {"district": DEMO_NAME},
    )
    [onboarding] = _say(talk, "7", "hallo")
    assert onboarding.endswith("\n\n" + short)
    [notice] = _say(talk, "7", "/privacy")
    assert notice.startswith(
        INCOMPLETE + "\n\nDatenschutzhinweise (Art. 13 DSGVO) – Dolmetscherpool, " + DEMO_NAME
    )
    assert _rows(engine) == before  # a stranger's reading writes nothing

    [welcome] = _say(talk, "7", f"/start {codes.school}")
    pointer = DE.gettext("What is stored about you, for how long, and your rights: /privacy")
    assert welcome.startswith(
        DE.render("Welcome! You are registered as {role}.", {"role": DE.gettext("a school")})
        + "\n\n"
        + pointer
    )
    assert welcome.count("/privacy") == 2  # the pointer, and the command in the list that follows
    assert _say(talk, "7", "/start") == [
        DE.render("You are already registered as {role}.", {"role": DE.gettext("a school")})
    ]

    # With a second county in the deployment, a stranger's county is not known: they name it.
    with UnitOfWork(engine) as uow:
        create_district(uow.session, name="Landkreis Celle", now=NOW)
        uow.commit()
    [generic] = _say(talk, "8", "hallo")
    assert generic.endswith(
        "\n\n"
        + DE.gettext(
            "Privacy: the county whose coordination office gave you the code is responsible for this bot. "
            "It stores your chat account only once you join with a code, and then only what the pool needs. "
            "/privacy shows the full notice."
        )
    )
    assert _say(talk, "8", "/privacy") == [
        DE.gettext("This bot serves several counties. Send /privacy with your county's short name:")
        + f"\n/privacy heidekreis – {DEMO_NAME}\n/privacy landkreis-celle – Landkreis Celle"
    ]
    [celle] = _say(talk, "8", "/privacy Landkreis-Celle")
    assert "Datenschutzhinweise (Art. 13 DSGVO) – Dolmetscherpool, Landkreis Celle" in celle.splitlines()
