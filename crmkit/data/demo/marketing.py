"""Demo marketing and deal arrivals: campaigns, weekly spend, adstock, saturation, new deals.

Weekly spend per channel is the sum of its campaigns' spend. Each channel's spend is carried
over by geometric adstock ``A_t = x_t + decay * A_{t-1}`` and saturated by a Hill curve
``S(A) = A^k / (A^k + K^k)``; the channel then adds ``beta * S(A_t)`` expected new deals per
week on top of the organic arrivals (trend, yearly seasonality, quarter-end push).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from crmkit.data.demo import params
from crmkit.data.demo.clock import Clock


def geometric_adstock(x: np.ndarray, decay: float) -> np.ndarray:
    """Geometric carry-over along the last axis: ``A_t = x_t + decay * A_{t-1}``.

    Parameters
    ----------
    x
        Spend per week (last axis is time).
    decay
        Share of last week's adstock carried into this week, in [0, 1).

    Returns
    -------
    numpy.ndarray
        Adstocked spend, same shape as ``x``.

    """
    return lfilter([1.0], [1.0, -decay], np.asarray(x, dtype=float), axis=-1)


def hill_saturation(a: np.ndarray, half: float, shape: float) -> np.ndarray:
    """Hill curve ``a^shape / (a^shape + half^shape)``, 0 at 0 and 1/2 at ``half``.

    Parameters
    ----------
    a
        Adstocked spend (non-negative).
    half
        Half-saturation point, in the units of ``a``.
    shape
        Steepness (1 = Michaelis-Menten).

    Returns
    -------
    numpy.ndarray

    """
    a = np.maximum(np.asarray(a, dtype=float), 0.0)
    return a**shape / (a**shape + half**shape)


@dataclass
class Marketing:
    """Campaigns, weekly spend and their per-campaign adstock."""

    weeks: pd.DatetimeIndex  # Monday of each week
    campaigns: pd.DataFrame
    spend: np.ndarray  # (n_campaigns, n_weeks)
    campaign_channel: np.ndarray  # channel index per campaign


def weeks_of(clock: Clock) -> pd.DatetimeIndex:
    """Mondays of the weeks that overlap the period."""
    first = clock.start - pd.Timedelta(days=clock.start.weekday())
    return pd.date_range(first, clock.end, freq="7D")


def _plan(rng: np.random.Generator, weeks: pd.DatetimeIndex, scale: float) -> list[dict]:
    """Campaign plans: channel, name, week range and planned spend per week."""
    n = len(weeks)
    years = np.arange(n) / 52.18
    plans: list[dict] = []
    # search: always on, one campaign per calendar quarter
    quarter = weeks.to_period("Q")
    for q in quarter.unique():
        idx = np.flatnonzero(quarter == q)
        rate = 3000.0 * scale * (1 + 0.1 * years[idx[0]]) * rng.uniform(0.7, 1.3)
        plans.append(
            dict(channel="search", name=f"Search always-on {q}", w0=idx[0], w1=idx[-1], rate=rate)
        )
    # social: flights of 4-8 weeks separated by 2-6 quiet weeks
    w = int(rng.integers(0, 4))
    while w < n:
        length = int(rng.integers(4, 9))
        plans.append(
            dict(
                channel="social",
                name=f"Social flight {weeks[w]:%Y-%m}",
                w0=w,
                w1=min(w + length, n) - 1,
                rate=3500.0 * scale * rng.uniform(0.6, 1.4),
            )
        )
        w += length + int(rng.integers(2, 7))
    # events: a one- or two-week event every 6-11 weeks
    w = int(rng.integers(2, 8))
    while w < n:
        length = int(rng.integers(1, 3))
        plans.append(
            dict(
                channel="events",
                name=f"Trade show {weeks[w]:%b %Y}",
                w0=w,
                w1=min(w + length, n) - 1,
                rate=12000.0 * scale * rng.uniform(0.5, 1.5),
            )
        )
        w += length + int(rng.integers(5, 10))
    # email: a newsletter programme per calendar month
    month = weeks.to_period("M")
    for m in month.unique():
        idx = np.flatnonzero(month == m)
        plans.append(
            dict(
                channel="email",
                name=f"Newsletter {m}",
                w0=idx[0],
                w1=idx[-1],
                rate=500.0 * scale * rng.uniform(0.8, 1.2),
            )
        )
    return plans


def draw_marketing(rng: np.random.Generator, clock: Clock, scale: float) -> Marketing:
    """Draw campaigns and their weekly spend (size ``scale`` times the reference company)."""
    weeks = weeks_of(clock)
    plans = _plan(rng, weeks, scale)
    plans.sort(key=lambda d: (d["w0"], params.CHANNELS.index(d["channel"])))
    nw = len(weeks)
    spend = np.zeros((len(plans), nw))
    rows = []
    for i, pl in enumerate(plans):
        w0, w1 = pl["w0"], pl["w1"]
        spend[i, w0 : w1 + 1] = pl["rate"] * rng.lognormal(0.0, 0.15, w1 - w0 + 1)
        rows.append(
            {
                "campaign_id": f"CMP{i + 1:04d}",
                "name": pl["name"],
                "channel": pl["channel"],
                "start_date": weeks[w0],
                "end_date": weeks[w1] + pd.Timedelta(days=6),
                "budget": float(np.round(pl["rate"] * (w1 - w0 + 1), -2)),
            }
        )
    spend = np.round(spend, 2)
    campaigns = pd.DataFrame(rows)
    campaigns["cost"] = np.round(spend.sum(axis=1), 2)
    campaigns["start_date"] = campaigns["start_date"].astype("datetime64[ns]")
    campaigns["end_date"] = campaigns["end_date"].astype("datetime64[ns]")
    channel = np.array([params.CHANNELS.index(c) for c in campaigns["channel"]])
    return Marketing(weeks=weeks, campaigns=campaigns, spend=spend, campaign_channel=channel)


def channel_spend_frame(mk: Marketing) -> pd.DataFrame:
    """Spend per channel per week (zeros included), summed over the channel's campaigns."""
    frames = []
    for c, name in enumerate(params.CHANNELS):
        frames.append(
            pd.DataFrame(
                {
                    "channel": name,
                    "week_start": mk.weeks.astype("datetime64[ns]"),
                    "spend": np.round(mk.spend[mk.campaign_channel == c].sum(axis=0), 2),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass
class Arrivals:
    """Expected arrival intensities per day and per week, by component."""

    organic_day: np.ndarray  # (n_days,)
    channel_day: np.ndarray  # (n_channels, n_days)
    week_of_day: np.ndarray  # week index of each day
    campaign_adstock: np.ndarray  # (n_campaigns, n_weeks)
    normalisation: float
    scale: float


def organic_shape(clock: Clock) -> np.ndarray:
    """Organic arrivals per day before scaling: trend x seasonality x quarter-end push."""
    d = np.arange(int(clock.length)) + 0.5
    years = d / 365.25
    season = params.ARRIVAL_SEASONALITY
    u = clock.year_fraction(d)
    rate = np.exp(
        params.ARRIVAL_TREND_PER_YEAR * years
        + season["amplitude"] * np.cos(2 * np.pi * (u - season["peak_year_fraction"]))
    )
    return params.ORGANIC_BASE_PER_DAY * rate * quarter_end_factor(clock)


def quarter_end_factor(clock: Clock) -> np.ndarray:
    """Multiplier per day: QUARTER_END_MULTIPLIER in the last days of a quarter, else 1."""
    days = pd.date_range(clock.start, clock.end, freq="D")
    to_end = (days.to_period("Q").end_time.normalize() - days).days.to_numpy()
    return np.where(to_end < params.QUARTER_END_DAYS, params.QUARTER_END_MULTIPLIER, 1.0)


def arrival_intensity(clock: Clock, mk: Marketing, n_deals: int, scale: float) -> Arrivals:
    """Daily expected arrivals, organic and per channel, normalised to total ``n_deals``."""
    n_days = int(clock.length)
    week_of_day = (np.arange(n_days) + (clock.start - mk.weeks[0]).days) // 7
    adstock = np.zeros_like(mk.spend)
    channel_week = np.zeros((len(params.CHANNELS), len(mk.weeks)))
    for c, name in enumerate(params.CHANNELS):
        sel = mk.campaign_channel == c
        adstock[sel] = geometric_adstock(mk.spend[sel], params.ADSTOCK_DECAY[name])
        total = adstock[sel].sum(axis=0)
        sat = hill_saturation(
            total, params.HALF_SATURATION[name] * scale, params.SATURATION_SHAPE[name]
        )
        channel_week[c] = params.MAX_DEALS_PER_WEEK[name] * scale * sat
    organic = organic_shape(clock) * scale
    channel_day = channel_week[:, week_of_day] / 7.0
    norm = n_deals / (organic.sum() + channel_day.sum())
    return Arrivals(
        organic_day=organic * norm,
        channel_day=channel_day * norm,
        week_of_day=week_of_day,
        campaign_adstock=adstock,
        normalisation=float(norm),
        scale=scale,
    )


@dataclass
class NewDeals:
    """Arrived deals: creation time, source, campaign (index or -1)."""

    t: np.ndarray
    source: np.ndarray  # object array of source names
    campaign: np.ndarray  # campaign index or -1


def draw_arrivals(
    rng: np.random.Generator, clock: Clock, mk: Marketing, arr: Arrivals, n_deals: int
) -> NewDeals:
    """Draw exactly ``n_deals`` arrivals (a Poisson process conditioned on its total)."""
    comp = np.vstack([arr.organic_day[None, :], arr.channel_day])  # (1 + n_channels, n_days)
    per_day = comp.sum(axis=0)
    counts = rng.multinomial(n_deals, per_day / per_day.sum())
    day = np.repeat(np.arange(len(per_day)), counts)
    t = day + (8.0 + 10.0 * rng.random(n_deals)) / 24.0
    # which component produced each deal, proportional to its intensity that day
    cum = np.cumsum(comp[:, day], axis=0) / per_day[day]
    which = np.minimum((rng.random(n_deals)[None, :] > cum).sum(axis=0), len(comp) - 1)
    source = np.empty(n_deals, dtype=object)
    org = which == 0
    names = np.array(list(params.ORGANIC_SOURCES), dtype=object)
    probs = np.array(list(params.ORGANIC_SOURCES.values()))
    source[org] = names[rng.choice(len(names), int(org.sum()), p=probs / probs.sum())]
    campaign = np.full(n_deals, -1, dtype=np.int64)
    for c, name in enumerate(params.CHANNELS):
        sel = np.flatnonzero(which == c + 1)
        source[sel] = params.CHANNEL_SOURCE[name]
        if len(sel) == 0:
            continue
        cids = np.flatnonzero(mk.campaign_channel == c)
        w = arr.week_of_day[day[sel]]
        weights = arr.campaign_adstock[cids][:, w]  # (n_campaigns_c, n_sel)
        cw = np.cumsum(weights, axis=0) / weights.sum(axis=0)
        pick = (rng.random(len(sel))[None, :] > cw).sum(axis=0)
        campaign[sel] = cids[np.minimum(pick, len(cids) - 1)]
    order = np.argsort(t, kind="stable")
    return NewDeals(t=t[order], source=source[order], campaign=campaign[order])
