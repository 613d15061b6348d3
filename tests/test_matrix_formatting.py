"""How replies look on Matrix: `!` commands, a plain and an HTML body, edits, transaction ids."""

from bot.matrix.app import strip_reply_fallback
from bot.matrix.formatting import bang_commands, edit_content, message_content
from bot.matrix.sender import transaction_id
from bot.messages import Choice, Reply, numbered


def test_commands_are_written_with_an_exclamation_mark_but_urls_and_words_stay() -> None:
    text = "Send /start CODE, then /request. See https://example.org/request and and/or /unknown."
    assert bang_commands(text) == (
        "Send !start CODE, then !request. See https://example.org/request and and/or /unknown."
    )


def test_a_reply_has_a_plain_body_and_an_escaped_html_body_with_the_choices_as_a_list() -> None:
    choices = (Choice("a", "Arabisch <ar>"), Choice("b", "Dari & Farsi"))
    content = message_content(Reply(numbered("Which language?\n/help lists more.", choices), choices))
    assert content == {
        "msgtype": "m.text",
        "body": "Which language?\n!help lists more.\n\n1. Arabisch <ar>\n2. Dari & Farsi",
        "format": "org.matrix.custom.html",
        "formatted_body": "Which language?<br>!help lists more."
        "<ol><li>Arabisch &lt;ar&gt;</li><li>Dari &amp; Farsi</li></ol>",
    }


def test_an_edit_replaces_the_earlier_event_and_keeps_a_fallback() -> None:
    content = edit_content("$offer", Reply("Taken. /jobs"))
    assert content["m.relates_to"] == {"rel_type": "m.replace", "event_id": "$offer"}
    assert content["m.new_content"]["body"] == "Taken. !jobs"
    assert content["body"] == "* Taken. !jobs"


def test_a_quoted_reply_counts_only_with_its_answer() -> None:
    reply = {"m.relates_to": {"m.in_reply_to": {"event_id": "$question"}}}
    assert strip_reply_fallback("> <@bot:localhost> Which language?\n> 1. Arabisch\n\n1", reply) == "1"
    assert strip_reply_fallback("> quoted on purpose", {}) == "> quoted on purpose"  # not a reply
    assert strip_reply_fallback("arabisch", reply) == "arabisch"


def test_transaction_ids_are_stable_per_key_and_differ_between_keys() -> None:
    assert transaction_id("delivery-7/0") == transaction_id("delivery-7/0")
    assert transaction_id("delivery-7/0") != transaction_id("delivery-7/1")
    assert transaction_id("reply:$event:0").startswith("dp-")
