"""Straight-line distances (services/geo.py): known places to the metre, and one place against many
the same as each pair alone."""

from hypothesis import given
from hypothesis import strategies as st

from services.geo import distance_m, distances_m

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


@given(st.tuples(latitudes, longitudes), points)
def test_one_place_against_many_is_each_pair_alone(
    place: tuple[float, float], many: list[tuple[float, float]]
) -> None:
    assert distances_m(place, many) == [distance_m(lat, lon, *place) for lat, lon in many]
