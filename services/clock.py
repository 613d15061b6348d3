"""The one time zone the product shows and counts days in: times are stored in UTC, shown in Berlin."""

from zoneinfo import ZoneInfo

BERLIN = ZoneInfo("Europe/Berlin")
