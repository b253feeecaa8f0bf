"""Calendar helpers shared by the demo generators: time as float days since the start."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

#: Days of a year in the seasonal cycles.
YEAR_DAYS = 365.25
#: Origin of the seasonal phase (year fraction 0).
SEASON_ORIGIN = pd.Timestamp("2000-01-01")


class Clock:
    """The simulation period ``[start, end_excl)`` with time measured in days since ``start``.

    Parameters
    ----------
    start, end
        First and last calendar day of the period (``end`` inclusive).

    """

    def __init__(self, start: str | pd.Timestamp, end: str | pd.Timestamp) -> None:
        self.start = pd.Timestamp(start).normalize()
        self.end = pd.Timestamp(end).normalize()
        if self.end < self.start:
            raise ValueError(f"end {self.end.date()} is before start {self.start.date()}")
        self.end_excl = self.end + pd.Timedelta(days=1)
        self.length = float((self.end_excl - self.start).days)
        self.u0 = (self.start - SEASON_ORIGIN).days / YEAR_DAYS

    def year_fraction(self, t: np.ndarray) -> np.ndarray:
        """Calendar time in years since 2000-01-01 of day offsets ``t``."""
        return self.u0 + np.asarray(t, dtype=float) / YEAR_DAYS

    def to_datetime(self, t: np.ndarray) -> np.ndarray:
        """Day offsets to datetime64[ns], rounded to the second."""
        secs = np.round(np.asarray(t, dtype=float) * 86400.0).astype("int64")
        return self.start.to_datetime64().astype("datetime64[s]") + secs.astype("timedelta64[s]")

    def to_date(self, t: np.ndarray) -> np.ndarray:
        """Day offsets to the calendar day (datetime64 at midnight)."""
        days = np.floor(np.asarray(t, dtype=float)).astype("int64")
        return self.start.to_datetime64().astype("datetime64[D]") + days.astype("timedelta64[D]")


def seasonal_factor(clock: Clock, t: np.ndarray, amplitude: float, peak: float) -> np.ndarray:
    """``1 + amplitude * cos(2 pi (u - peak))`` at day offsets ``t``."""
    return 1.0 + amplitude * np.cos(2 * np.pi * (clock.year_fraction(t) - peak))


def seasonal_integral(clock: Clock, t: np.ndarray, amplitude: float, peak: float) -> np.ndarray:
    """Integral in days of :func:`seasonal_factor` from the start to day offset ``t``."""
    t = np.asarray(t, dtype=float)
    k = amplitude * YEAR_DAYS / (2 * np.pi)
    phase = 2 * np.pi * (clock.year_fraction(t) - peak)
    phase0 = 2 * np.pi * (clock.u0 - peak)
    return t + k * (np.sin(phase) - np.sin(phase0))


class SeasonalTime:
    """Operational time of a seasonal rate and its inverse (by interpolation on a fine grid)."""

    def __init__(self, clock: Clock, amplitude: float, peak: float, step: float = 0.25) -> None:
        self.clock, self.amplitude, self.peak = clock, amplitude, peak
        self.grid = np.arange(0.0, clock.length + step, step)
        self.values = seasonal_integral(clock, self.grid, amplitude, peak)

    def forward(self, t: np.ndarray) -> np.ndarray:
        """Operational days elapsed from the start to ``t``."""
        return seasonal_integral(self.clock, t, self.amplitude, self.peak)

    def inverse(self, s: np.ndarray) -> np.ndarray:
        """Calendar day offset whose operational time is ``s``."""
        return np.interp(s, self.values, self.grid)


def day_offsets(clock: Clock, dates: pd.Series | np.ndarray) -> np.ndarray:
    """Day offsets (floats) of timestamps."""
    d = pd.to_datetime(pd.Series(dates)).to_numpy(dtype="datetime64[ns]")
    return (d - clock.start.to_datetime64()).astype("timedelta64[ns]").astype("int64") / 86400e9


def padded_ids(prefix: str, n: int, width: int | None = None) -> pd.api.extensions.ExtensionArray:
    """Return identifiers ``prefix`` + zero-padded 1..n, as a pandas string array."""
    width = width or max(6, len(str(n)))
    nums = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), width, "0")
    return pd.array(pc.binary_join_element_wise(prefix, nums, ""), dtype="str")


def vocab(values) -> pd.api.extensions.ExtensionArray:
    """Return a small pandas string array to ``take`` labels from."""
    return pd.array(list(values), dtype="str")


def take(
    arr: pd.api.extensions.ExtensionArray, idx: np.ndarray
) -> pd.api.extensions.ExtensionArray:
    """Labels at positions ``idx`` (-1 gives a missing value)."""
    return arr.take(np.asarray(idx, dtype=np.int64), allow_fill=True)


def choice(rng: np.random.Generator, options: dict[str, float] | tuple, size: int, p=None):
    """Sample indices of ``options`` (a {name: probability} dict or a tuple with ``p``)."""
    if isinstance(options, dict):
        p = np.array(list(options.values()), dtype=float)
    p = np.asarray(p, dtype=float)
    return rng.choice(len(p), size=size, p=p / p.sum())
