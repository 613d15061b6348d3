"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 04:23:37.950358
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "district",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_event_district_id"), ["district_id"], unique=False)

    op.create_table(
        "budget",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("fiscal_year", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("reserved_cents", sa.Integer(), nullable=False),
        sa.Column("charged_cents", sa.Integer(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("reserved_cents >= 0", name="budget_reserved_not_negative"),
        sa.CheckConstraint(
            "total_cents - reserved_cents - charged_cents >= 0", name="budget_available_not_negative"
        ),
        sa.CheckConstraint("total_cents >= 0", name="budget_total_not_negative"),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("district_id", "fiscal_year"),
    )
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_budget_district_id"), ["district_id"], unique=False)

    op.create_table(
        "interpreter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("municipality", sa.String(length=100), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("modes", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("gender", sa.String(length=10), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("interpreter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interpreter_district_id"), ["district_id"], unique=False)

    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("recipient_type", sa.String(length=20), nullable=False),
        sa.Column("recipient_id", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_message_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_message_sent_at"), ["sent_at"], unique=False)

    op.create_table(
        "policy_setting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("district_id", "key"),
    )
    with op.batch_alter_table("policy_setting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_setting_district_id"), ["district_id"], unique=False)

    op.create_table(
        "school",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("municipality", sa.String(length=100), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("district_id", "name"),
    )
    with op.batch_alter_table("school", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_school_district_id"), ["district_id"], unique=False)

    op.create_table(
        "absence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interpreter_id", sa.Integer(), nullable=False),
        sa.Column("starts_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("ends_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name="absence_ends_after_start"),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("absence", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_absence_interpreter_id"), ["interpreter_id"], unique=False)

    op.create_table(
        "interpreter_language",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interpreter_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("interpreter_id", "language"),
    )
    with op.batch_alter_table("interpreter_language", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_interpreter_language_interpreter_id"), ["interpreter_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_interpreter_language_language"), ["language"], unique=False)

    op.create_table(
        "member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("interpreter_id", sa.Integer(), nullable=True),
        sa.Column("locale", sa.String(length=10), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_member_district_id"), ["district_id"], unique=False)

    op.create_table(
        "invite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("interpreter_id", sa.Integer(), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
    )
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_invite_district_id"), ["district_id"], unique=False)

    op.create_table(
        "request",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=False),
        sa.Column("created_by_member_id", sa.Integer(), nullable=True),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=20), nullable=False),
        sa.Column("starts_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("place", sa.String(length=300), nullable=False),
        sa.Column("place_latitude", sa.Float(), nullable=False),
        sa.Column("place_longitude", sa.Float(), nullable=False),
        sa.Column("gender_preference", sa.String(length=10), nullable=True),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("state_reason", sa.String(length=40), nullable=True),
        sa.Column("estimate_cents", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("interpreter_id", sa.Integer(), nullable=True),
        sa.Column("booked_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by_member_id"],
            ["member.id"],
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["school_id"],
            ["school.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_interpreter_id"), ["interpreter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_language"), ["language"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_school_id"), ["school_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_starts_at"), ["starts_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_request_state"), ["state"], unique=False)

    op.create_table(
        "closeout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("actual_minutes", sa.Integer(), nullable=False),
        sa.Column("km", sa.Integer(), nullable=False),
        sa.Column("expenses_cents", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reported_by", sa.String(length=100), nullable=False),
        sa.Column("reported_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", db.types.UTCDateTime(), nullable=True),
        sa.Column("dispute_reason", sa.String(length=300), nullable=True),
        sa.Column("correction_reason", sa.String(length=300), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id"),
    )
    op.create_table(
        "ledger_entry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("budget_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budget.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_entry_budget_id"), ["budget_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_entry_request_id"), ["request_id"], unique=False)

    op.create_table(
        "offer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("interpreter_id", sa.Integer(), nullable=False),
        sa.Column("wave", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("pay_cents", sa.Integer(), nullable=False),
        sa.Column("distance_m", sa.Integer(), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", db.types.UTCDateTime(), nullable=False),
        sa.Column("responded_at", db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["interpreter_id"],
            ["interpreter.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "interpreter_id"),
    )
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_interpreter_id"), ["interpreter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_request_id"), ["request_id"], unique=False)
        batch_op.create_index(
            "offer_one_accepted_per_request",
            ["request_id"],
            unique=True,
            sqlite_where=sa.text("state = 'accepted'"),
            postgresql_where=sa.text("state = 'accepted'"),
        )

    op.create_table(
        "unmet_demand",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=20), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("created_at", db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["district.id"],
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["request.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "reason"),
    )
    with op.batch_alter_table("unmet_demand", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unmet_demand_district_id"), ["district_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_unmet_demand_language"), ["language"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("unmet_demand", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unmet_demand_language"))
        batch_op.drop_index(batch_op.f("ix_unmet_demand_district_id"))

    op.drop_table("unmet_demand")
    with op.batch_alter_table("offer", schema=None) as batch_op:
        batch_op.drop_index(
            "offer_one_accepted_per_request",
            sqlite_where=sa.text("state = 'accepted'"),
            postgresql_where=sa.text("state = 'accepted'"),
        )
        batch_op.drop_index(batch_op.f("ix_offer_request_id"))
        batch_op.drop_index(batch_op.f("ix_offer_interpreter_id"))
        batch_op.drop_index(batch_op.f("ix_offer_expires_at"))

    op.drop_table("offer")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_entry_request_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_entry_budget_id"))

    op.drop_table("ledger_entry")
    op.drop_table("closeout")
    with op.batch_alter_table("request", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_state"))
        batch_op.drop_index(batch_op.f("ix_request_starts_at"))
        batch_op.drop_index(batch_op.f("ix_request_school_id"))
        batch_op.drop_index(batch_op.f("ix_request_language"))
        batch_op.drop_index(batch_op.f("ix_request_interpreter_id"))
        batch_op.drop_index(batch_op.f("ix_request_district_id"))

    op.drop_table("request")
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_invite_district_id"))

    op.drop_table("invite")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_member_district_id"))

    op.drop_table("member")
    with op.batch_alter_table("interpreter_language", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interpreter_language_language"))
        batch_op.drop_index(batch_op.f("ix_interpreter_language_interpreter_id"))

    op.drop_table("interpreter_language")
    with op.batch_alter_table("absence", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_absence_interpreter_id"))

    op.drop_table("absence")
    with op.batch_alter_table("school", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_school_district_id"))

    op.drop_table("school")
    with op.batch_alter_table("policy_setting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_setting_district_id"))

    op.drop_table("policy_setting")
    with op.batch_alter_table("outbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_sent_at"))
        batch_op.drop_index(batch_op.f("ix_outbox_message_district_id"))

    op.drop_table("outbox_message")
    with op.batch_alter_table("interpreter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interpreter_district_id"))

    op.drop_table("interpreter")
    with op.batch_alter_table("budget", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_budget_district_id"))

    op.drop_table("budget")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_event_district_id"))

    op.drop_table("audit_event")
    op.drop_table("district")
