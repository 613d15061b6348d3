"""`python -m bot retention run`: the nightly purge of what is kept no longer, at once, with its counts."""

import argparse

from bot.cli.context import Context
from db.engine import checkpoint
from services import personal_data, retention


def retention_run(ctx: Context, args: argparse.Namespace) -> int:
    """Purge now what the district's retention rules say is due, and print how much went."""
    with ctx.uow() as uow:
        district = ctx.district(uow)
        assert district.id is not None
        counts = retention.purge_now(uow.session, district.id, actor=ctx.actor(), now=ctx.now())
        erased = personal_data.erase_lapsed(uow.session, district.id, now=ctx.now())
        uow.commit()
    if counts.total or erased:
        checkpoint(ctx.engine)  # the purged text leaves SQLite's -wal file too
    c = counts
    ctx.say(
        "Free text removed in {district}: {notes} notes, {places} typed places ({change_places} in "
        "changes), {reasons} dispute and correction reasons, {ledger} reasons in the ledger, {audit} "
        "audit details, {params} notification contents, {bodies} message texts, {invites} invites.",
        district=district.name,
        notes=c.notes,
        places=c.places,
        change_places=c.change_places,
        reasons=c.closeout_reasons,
        ledger=c.ledger_reasons,
        audit=c.audit_details,
        params=c.outbox_params,
        bodies=c.delivery_contents,
        invites=c.invites,
    )
    ctx.say(
        "Deleted: {drafts} dialog drafts untouched for 7 days, {links} chat links of people deactivated "
        "30 days ago, {messages} messages and {notifications} notifications sent or given up before the "
        "period.",
        drafts=c.drafts,
        links=c.chat_links,
        messages=c.deliveries,
        notifications=c.notifications,
    )
    ctx.say(
        "Fiscal years past retention_accounts: {requests} requests, {offers} offers, {changes} changes, "
        "{closeouts} reports, {unmet} unmet requests, {entries} ledger entries, {budgets} budgets and "
        "{events} audit events deleted.",
        requests=c.old_requests,
        offers=c.old_offers,
        changes=c.old_changes,
        closeouts=c.old_closeouts,
        unmet=c.old_unmet_demand,
        entries=c.old_ledger_entries,
        budgets=c.old_budgets,
        events=c.old_audit_events,
    )
    ctx.say(
        "People deactivated 30 days ago and erased now, as on their request: {members}.",
        members=", ".join(f"#{m}" for m in erased) or "—",
    )
    return 0
