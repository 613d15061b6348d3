"""Straight-line distances between places given by latitude and longitude."""

from collections.abc import Iterable
from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> int:
    """Great-circle (haversine) distance in whole metres."""
    return distances_m((lat2, lon2), [(lat1, lon1)])[0]


def distances_m(place: tuple[float, float], points: Iterable[tuple[float, float]]) -> list[int]:
    """`distance_m` from each of `points` to `place`, with what depends on the place alone worked out
    once: matching measures some thousand speakers against one school."""
    lat2, lon2 = place
    cos_phi2, diameter = cos(radians(lat2)), 2 * EARTH_RADIUS_M
    found = []
    for lat1, lon1 in points:
        dphi, dlambda = radians(lat2 - lat1), radians(lon2 - lon1)
        a = sin(dphi / 2) ** 2 + cos(radians(lat1)) * cos_phi2 * sin(dlambda / 2) ** 2
        found.append(round(diameter * asin(sqrt(a))))
    return found
