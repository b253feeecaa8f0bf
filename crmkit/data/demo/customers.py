"""Demo customers: accounts in segments, contacts, and orders from BG/NBD and Gamma-Gamma.

Each account is acquired at ``created_at`` with a first order. Its repeat orders follow the
BG/NBD process (Fader, Hardie & Lee 2005) in a seasonal operational time: the purchase rate
is ``lambda * s(t)`` with ``s`` a yearly cosine of mean one, and after every repeat order the
customer drops out with probability ``p``. Order values follow the Gamma-Gamma model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from crmkit.data.demo import params
from crmkit.data.demo.clock import Clock, SeasonalTime, choice, padded_ids, take, vocab

_ADJECTIVES = (
    "Blue",
    "Bright",
    "Silver",
    "North",
    "Summit",
    "Prime",
    "Atlas",
    "Cedar",
    "Delta",
    "Echo",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Keystone",
    "Lumen",
    "Maple",
    "Nova",
    "Orbit",
    "Pioneer",
    "Quantum",
    "River",
    "Sterling",
    "Terra",
    "Union",
    "Vertex",
    "Willow",
    "Zenith",
)
_NOUNS = (
    "Analytics",
    "Foods",
    "Logistics",
    "Systems",
    "Labs",
    "Health",
    "Energy",
    "Works",
    "Media",
    "Partners",
    "Robotics",
    "Textiles",
    "Capital",
    "Motors",
    "Learning",
    "Retail",
    "Networks",
    "Pharma",
    "Design",
    "Supply",
)
_SUFFIXES = ("Inc", "Ltd", "GmbH", "LLC", "SA", "BV", "AB", "Group")
_FIRST = (
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kate",
    "Leo",
    "Maria",
    "Nils",
    "Olga",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Victor",
    "Wen",
    "Yusuf",
)
_LAST = (
    "Andersen",
    "Brown",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hansen",
    "Ito",
    "Jensen",
    "Kowalski",
    "Lopez",
    "Meyer",
    "Nakamura",
    "Olsen",
    "Perez",
    "Rossi",
    "Schmidt",
    "Silva",
    "Smith",
    "Tanaka",
    "Weber",
)
_ROLES = ("Economic buyer", "Champion", "Technical evaluator", "User", "Procurement")


@dataclass
class Accounts:
    """Per-account arrays (index i is account i)."""

    segment: np.ndarray  # int index into params.SEGMENTS
    t0: np.ndarray  # acquisition time, days since start
    owner: np.ndarray  # int index into OWNERS
    adjective: np.ndarray
    noun: np.ndarray
    suffix: np.ndarray
    industry: np.ndarray
    country: np.ndarray


#: Owners in a fixed order, with their team.
OWNERS = tuple(o for team in params.TEAMS.values() for o in team)
OWNER_TEAM = tuple(team for team, owners in params.TEAMS.items() for _ in owners)


def draw_accounts(rng: np.random.Generator, clock: Clock, n: int) -> Accounts:
    """Draw segments, acquisition times (linearly growing density), owners and attributes."""
    seg = choice(rng, params.SEGMENT_SHARE, n)
    g, L = params.ACQUISITION_GROWTH, clock.length
    u = rng.random(n)
    # inverse CDF of the density proportional to 1 + g x / L on [0, L]
    t0 = (np.sqrt(1.0 + 2.0 * g * u * (1.0 + g / 2.0)) - 1.0) * L / g if g > 0 else u * L
    t0 = np.minimum(t0, np.nextafter(L, 0))
    owner = np.empty(n, dtype=np.int64)
    teams = list(params.TEAMS)
    for s, name in enumerate(params.SEGMENTS):
        idx = np.flatnonzero(seg == s)
        team = choice(rng, params.TEAM_BY_SEGMENT[name], len(idx))
        for k, tname in enumerate(teams):
            sel = idx[team == k]
            first = OWNERS.index(params.TEAMS[tname][0])
            owner[sel] = first + rng.integers(0, len(params.TEAMS[tname]), len(sel))
    return Accounts(
        segment=seg,
        t0=t0,
        owner=owner,
        adjective=rng.integers(0, len(_ADJECTIVES), n),
        noun=rng.integers(0, len(_NOUNS), n),
        suffix=rng.integers(0, len(_SUFFIXES), n),
        industry=choice(rng, params.INDUSTRIES, n),
        country=choice(rng, params.COUNTRIES, n),
    )


def account_names(acc: Accounts) -> ExtensionArray:
    """Company names such as ``"Cedar Logistics GmbH"``."""
    names = vocab(f"{a} {b} {c}" for a in _ADJECTIVES for b in _NOUNS for c in _SUFFIXES)
    return take(names, (acc.adjective * len(_NOUNS) + acc.noun) * len(_SUFFIXES) + acc.suffix)


def account_domains(acc: Accounts) -> ExtensionArray:
    """E-mail domains such as ``"cedarlogistics.example"``."""
    doms = vocab(f"{a}{b}.example".lower() for a in _ADJECTIVES for b in _NOUNS)
    return take(doms, acc.adjective * len(_NOUNS) + acc.noun)


@dataclass
class Orders:
    """Repeat-purchase orders (first orders included) as arrays."""

    account: np.ndarray  # account index
    t: np.ndarray  # days since start
    amount: np.ndarray
    first: np.ndarray  # bool: the acquisition order


def simulate_orders(rng: np.random.Generator, clock: Clock, acc: Accounts) -> Orders:
    """Simulate first and repeat orders of every account up to the period end (vectorised)."""
    n = len(acc.t0)
    lam = np.empty(n)
    p = np.empty(n)
    nu = np.empty(n)
    shape_p = np.empty(n)
    for s, name in enumerate(params.SEGMENTS):
        idx = acc.segment == s
        k = int(idx.sum())
        b, gg = params.BGNBD[name], params.GAMMA_GAMMA[name]
        lam[idx] = rng.gamma(b["r"], 1.0 / b["alpha"], k)
        p[idx] = rng.beta(b["a"], b["b"], k)
        nu[idx] = rng.gamma(gg["q"], 1.0 / gg["gamma"], k)
        shape_p[idx] = gg["p"]
    season = params.PURCHASE_SEASONALITY
    op = SeasonalTime(clock, season["amplitude"], season["peak_year_fraction"])
    op0 = op.forward(acc.t0)
    window = op.forward(np.array([clock.length]))[0] - op0  # operational days
    n_poisson = rng.poisson(lam * window / 7.0)
    n_alive = rng.geometric(np.clip(p, 1e-12, 1.0))  # repeat orders before dropping out
    k = np.minimum(n_poisson, n_alive)
    total = int(k.sum())
    owner_of = np.repeat(np.arange(n), k)
    # first k order statistics of n_poisson uniforms: S_j / (S_k + Gamma(n + 1 - k)).
    e = rng.standard_exponential(total)
    csum = np.cumsum(e)
    starts = np.concatenate(([0], np.cumsum(k)[:-1]))
    base = np.where(starts > 0, csum[np.maximum(starts - 1, 0)], 0.0)
    local = csum - np.repeat(base, k)
    s_k = np.zeros(n)
    has = k > 0
    s_k[has] = local[np.cumsum(k)[has] - 1]
    denom = s_k + rng.gamma(n_poisson - k + 1.0)
    u = local / np.repeat(denom, k)
    t_rep = op.inverse(np.repeat(op0, k) + u * np.repeat(window, k))
    t_rep = np.clip(t_rep, np.repeat(acc.t0, k), np.nextafter(clock.length, 0))
    account = np.concatenate((np.arange(n), owner_of))
    t = np.concatenate((acc.t0, t_rep))
    amount = rng.gamma(shape_p[account], 1.0 / nu[account])
    first = np.zeros(len(t), dtype=bool)
    first[:n] = True
    return Orders(account=account, t=t, amount=np.round(amount, 2), first=first)


def draw_contacts(
    rng: np.random.Generator, account_ids: ExtensionArray, domains: ExtensionArray
) -> pd.DataFrame:
    """One to three contacts per account with names, e-mails and roles."""
    n = len(account_ids)
    per = 1 + rng.binomial(2, 0.35, n)
    acc = np.repeat(np.arange(n), per)
    m = len(acc)
    first = rng.integers(0, len(_FIRST), m)
    last = rng.integers(0, len(_LAST), m)
    full = vocab(f"{f} {la}" for f in _FIRST for la in _LAST)
    local = vocab(f"{f}.{la}".lower() for f in _FIRST for la in _LAST)
    code = first * len(_LAST) + last
    email = pd.Series(take(local, code)) + "@" + pd.Series(take(domains, acc))
    return pd.DataFrame(
        {
            "contact_id": padded_ids("C", m, max(7, len(str(m)))),
            "account_id": take(account_ids, acc),
            "name": take(full, code),
            "email": email.array,
            "role": take(vocab(_ROLES), rng.integers(0, len(_ROLES), m)),
        }
    )
