"""The delivery fee: a documented formula, so partners can predict it.

fee = BASE_FEE_CENTS + PER_KM_CENTS × trip kilometres (pickup to dropoff), rounded to the cent,
plus WAIT_SURCHARGE_CENTS for every full 10 minutes the customer waits beyond the first 15
(a busy fleet costs more to serve, and the partner sees why the fee rose).
"""

import math
from datetime import timedelta

BASE_FEE_CENTS = 199
PER_KM_CENTS = 60
WAIT_SURCHARGE_CENTS = 50
FREE_WAIT = timedelta(minutes=15)


def delivery_fee_cents(trip_meters: float, wait: timedelta) -> int:
    """The fee of a trip of `trip_meters` whose pickup is `wait` away."""
    surcharge_steps = max(0, math.floor((wait - FREE_WAIT) / timedelta(minutes=10)))
    return BASE_FEE_CENTS + round(PER_KM_CENTS * trip_meters / 1000) + WAIT_SURCHARGE_CENTS * surcharge_steps
