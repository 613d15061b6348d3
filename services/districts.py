"""Districts (the tenants) and finding the one a command is about."""

import re
from datetime import datetime

from sqlmodel import Session, col, func, select

from db.models import District, Member
from services.errors import InvalidInput, NotFound
from services.policy import write_defaults
from services.text import N_
from services.vocabulary import Role

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


def slugify(name: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
    return re.sub(r"[^a-z0-9]+", "-", name.lower().translate(table)).strip("-")[:63]


def create_district(session: Session, *, name: str, now: datetime, slug: str | None = None) -> District:
    """A new district with the default policy."""
    name = name.strip()
    slug = slug or slugify(name)
    if not name or not _SLUG.match(slug):
        raise InvalidInput(N_("“{value}” cannot name a district."), value=name)
    if session.exec(select(District).where(District.slug == slug)).first():
        raise InvalidInput(N_("The district “{value}” exists already."), value=slug)
    district = District(slug=slug, name=name, created_at=now)
    session.add(district)
    session.flush()
    assert district.id is not None
    write_defaults(session, district.id)
    return district


def all_districts(session: Session) -> list[District]:
    return list(session.exec(select(District).order_by(col(District.id))))


def coordinator_counts(session: Session) -> dict[int, int]:
    """How many coordinators each district has (districts without any are missing)."""
    rows = session.exec(
        select(Member.district_id, func.count())
        .where(Member.role == Role.COORDINATOR.value)
        .group_by(col(Member.district_id))
    )
    return {district_id: count for district_id, count in rows}


def find_district(session: Session, slug: str | None) -> District:
    """The district named by `slug`, or the only one when no slug is given."""
    if slug:
        district = session.exec(select(District).where(District.slug == slug)).first()
        if district is None:
            raise NotFound(N_("There is no district “{value}”."), value=slug)
        return district
    districts = all_districts(session)
    if not districts:
        raise NotFound(N_("There is no district yet; run “init” first."))
    if len(districts) > 1:
        raise InvalidInput(
            N_("There are several districts; choose one with --district ({values})."),
            values=", ".join(d.slug for d in districts),
        )
    return districts[0]
