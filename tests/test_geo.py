"""Straight-line distances (services/geo.py): known places to the metre, and one place against many
the same, to the metre, as the haversine written out plainly for each pair."""

from math import asin, cos, radians, sin, sqrt

from hypothesis import given
from hypothesis import strategies as st

from services.geo import EARTH_RADIUS_M, distance_m, distances_m

CELLE, HANNOVER, HAMBURG, MUNICH = (
    (52.6226, 10.0805),
    (52.3759, 9.7320),
    (53.5511, 9.9937),
    (48.1351, 11.5820),
)


def test_known_distances_to_the_metre() -> None:
    assert distance_m(*CELLE, *HANNOVER) == 36180
    assert distance_m(*HANNOVER, *CELLE) == 36180
    assert distance_m(*HAMBURG, *MUNICH) == 612429
    assert distance_m(*CELLE, *CELLE) == 0
    assert distance_m(0.0, 179.9, 0.0, -179.9) == 22239  # across the date line, the short way


latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.lists(st.tuples(latitudes, longitudes), max_size=20)


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> int:
    """The formula as `distance_m` had it before the place's part was worked out once."""
    phi1, phi2 = radians(lat1), radians(lat2)
    dphi, dlambda = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dphi / 2) ** 2 + cos(phi1) * cos(phi2) * sin(dlambda / 2) ** 2
    return round(2 * EARTH_RADIUS_M * asin(sqrt(a)))


@given(st.tuples(latitudes, longitudes), points)
def test_one_place_against_many_is_the_plain_haversine_of_each_pair(
    place: tuple[float, float], many: list[tuple[float, float]]
) -> None:
    assert distances_m(place, many) == [_haversine(lat, lon, *place) for lat, lon in many]
