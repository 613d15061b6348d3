"""The nightly purge over a district with many requests, on SQLite (a file) or PostgreSQL (DATABASE_URL).

Writes N past requests with a note and a typed place, N audit events and N/2 closeouts with a
dispute reason, all older than the period, then times `retention.purge` (one transaction, as the
due row runs it) and the WAL checkpoint after it, and a second purge that finds nothing.

Run: `.venv/bin/python -m bench.retention [--requests 100000]`
"""

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from db.engine import checkpoint, make_engine
from db.migrate import upgrade
from db.models import AuditEvent, Closeout, Request
from db.uow import UnitOfWork
from services.districts import create_district
from services.policy import load_policy
from services.retention import purge
from services.schools import SchoolData, save_school

START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)


def fill(url: str, count: int) -> int:
    engine = make_engine(url)
    upgrade(engine)
    with UnitOfWork(engine) as uow:
        district = create_district(uow.session, name="Landkreis Bench", slug="bench", now=START)
        assert district.id is not None
        school = save_school(
            uow.session,
            district_id=district.id,
            data=SchoolData("Grundschule", "Schulstraße 4", "Soltau", 52.98, 9.84),
            actor="bench",
            now=START,
        )
        assert school.id is not None
        uow.commit()
        district_id, school_id = district.id, school.id
    began = time.perf_counter()
    with engine.begin() as connection:
        rows = []
        for n in range(count):
            at = START + timedelta(minutes=7 * n)
            rows.append(
                {
                    "district_id": district_id,
                    "school_id": school_id,
                    "language": "ar",
                    "mode": "in_person",
                    "topic": "parent_talk",
                    "starts_at": at,
                    "duration_minutes": 60,
                    "place": f"Raum {n}",
                    "place_latitude": 52.98,
                    "place_longitude": 9.84,
                    "note": f"Hinweis Nummer {n}",
                    "state": "settled",
                    "estimate_cents": 2400,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        connection.execute(insert(Request), rows)
        ids = [row[0] for row in connection.exec_driver_sql("SELECT id FROM request ORDER BY id")]
        connection.execute(
            insert(Closeout),
            [
                {
                    "request_id": rid,
                    "actual_minutes": 60,
                    "km": 0,
                    "expenses_cents": 0,
                    "state": "confirmed",
                    "reported_by": "bench",
                    "reported_at": START,
                    "decided_at": START,
                    "dispute_reason": f"Grund {rid}",
                    "amount_cents": 2400,
                }
                for rid in ids[::2]
            ],
        )
        connection.execute(
            insert(AuditEvent),
            [
                {
                    "district_id": district_id,
                    "actor": "bench",
                    "action": "request.submitted",
                    "entity": "request",
                    "entity_id": rid,
                    "detail": f'{{"note": "Hinweis {rid}"}}',
                    "created_at": START,
                }
                for rid in ids
            ],
        )
    print(f"wrote {count} requests in {time.perf_counter() - began:.1f} s")
    engine.dispose()
    return district_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--url", default=None, help="a database URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        district_id = fill(url, args.requests)
        engine = make_engine(url)
        now = START + timedelta(days=3 * 365)
        for run in ("first", "second"):
            began = time.perf_counter()
            with UnitOfWork(engine) as uow:
                counts = purge(
                    uow.session, district_id, now=now, policy=load_policy(uow.session, district_id)
                )
                uow.commit()
            purged = time.perf_counter() - began
            checkpoint(engine)
            print(
                f"{run} purge: {purged:.2f} s, checkpoint {time.perf_counter() - began - purged:.2f} s; "
                f"notes={counts.notes} places={counts.places} reasons={counts.closeout_reasons} "
                f"audit={counts.audit_details}"
            )
        engine.dispose()


if __name__ == "__main__":
    main()
