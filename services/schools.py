"""Schools of a district, and their CSV import."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from db.models import School
from services.audit import record
from services.csv_import import latitude, longitude, read_rows, required_text

SCHOOL_COLUMNS = ("name", "address", "municipality", "latitude", "longitude")


@dataclass(frozen=True)
class SchoolData:
    name: str
    address: str
    municipality: str
    latitude: float
    longitude: float


def save_school(session: Session, *, district_id: int, data: SchoolData, actor: str, now: datetime) -> School:
    """Add a school, or update the one of the same name in the district."""
    school = session.exec(
        select(School).where(School.district_id == district_id, School.name == data.name)
    ).first()
    action = "school.updated"
    if school is None:
        school = School(
            district_id=district_id,
            name=data.name,
            address="",
            municipality="",
            latitude=0,
            longitude=0,
            created_at=now,
        )
        action = "school.created"
    school.address, school.municipality = data.address, data.municipality
    school.latitude, school.longitude = data.latitude, data.longitude
    session.add(school)
    session.flush()
    assert school.id is not None
    record(
        session,
        district_id=district_id,
        actor=actor,
        action=action,
        entity="school",
        entity_id=school.id,
        now=now,
    )
    return school


def import_schools(
    session: Session, *, district_id: int, text: str, file: str, actor: str, now: datetime
) -> int:
    """Import schools from CSV; the first bad cell raises ImportRowError before anything is written."""
    parsed = [
        SchoolData(
            name=row.cell("name", required_text(200)),
            address=row.cell("address", required_text(300)),
            municipality=row.cell("municipality", required_text(100)),
            latitude=row.cell("latitude", latitude),
            longitude=row.cell("longitude", longitude),
        )
        for row in read_rows(text, file=file, columns=SCHOOL_COLUMNS)
    ]
    for data in parsed:
        save_school(session, district_id=district_id, data=data, actor=actor, now=now)
    return len(parsed)


def list_schools(session: Session, district_id: int) -> Sequence[School]:
    return session.exec(
        select(School).where(School.district_id == district_id).order_by(col(School.id))
    ).all()
