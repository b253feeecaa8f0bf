"""The true parameters of the demo company's generative model, as plain constants.

Every number here is written into ``DemoCompany.truth`` and documented in
``docs/demo_company.md``. Time units: purchase rates are per week, durations in days,
log-odds offsets on the natural scale.
"""

from __future__ import annotations

import numpy as np

#: Bumped whenever the generative model changes, so stored truths can be told apart.
MODEL_VERSION = 2

# --------------------------------------------------------------------- customers
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARE = {"SMB": 0.6, "Mid-Market": 0.3, "Enterprise": 0.1}
#: BG/NBD per segment: lambda ~ Gamma(r, rate alpha) per week, p ~ Beta(a, b).
BGNBD = {
    "SMB": {"r": 0.5, "alpha": 9.0, "a": 0.9, "b": 3.0},
    "Mid-Market": {"r": 0.8, "alpha": 7.0, "a": 0.6, "b": 4.0},
    "Enterprise": {"r": 1.2, "alpha": 6.0, "a": 0.4, "b": 6.0},
}
#: Gamma-Gamma per segment: nu ~ Gamma(q, rate gamma), order value ~ Gamma(p, rate nu).
GAMMA_GAMMA = {
    "SMB": {"p": 6.0, "q": 4.0, "gamma": 150.0},
    "Mid-Market": {"p": 5.0, "q": 5.0, "gamma": 800.0},
    "Enterprise": {"p": 4.0, "q": 6.0, "gamma": 3000.0},
}
#: Purchase-rate seasonality: lambda(t) = lambda * (1 + amplitude * cos(2 pi (u - peak))),
#: u = calendar time in years since 2000-01-01 (365.25-day years), peak as a year fraction.
PURCHASE_SEASONALITY = {"amplitude": 0.15, "peak_year_fraction": 0.93}
#: Account acquisition density over the period, proportional to 1 + growth * x / L.
ACQUISITION_GROWTH = 1.0
INDUSTRIES = {
    "Software": 0.2,
    "Manufacturing": 0.15,
    "Retail": 0.15,
    "Healthcare": 0.12,
    "Financial services": 0.12,
    "Education": 0.08,
    "Logistics": 0.1,
    "Media": 0.08,
}
COUNTRIES = {
    "US": 0.35,
    "GB": 0.12,
    "DE": 0.12,
    "FR": 0.08,
    "NL": 0.06,
    "CA": 0.08,
    "AU": 0.06,
    "SE": 0.04,
    "ES": 0.05,
    "IT": 0.04,
}

# --------------------------------------------------------------------- sales teams
TEAMS = {
    "East": ("Ava Thompson", "Liam Carter", "Mia Patel", "Noah Kim"),
    "West": ("Emma Garcia", "Lucas Rossi", "Zoe Martin", "Ethan Walker"),
    "Strategic": ("Olivia Chen", "James Mueller", "Sofia Novak"),
}
#: Probability that an account of a segment is owned by each team (owner uniform in team).
TEAM_BY_SEGMENT = {
    "SMB": {"East": 0.5, "West": 0.5, "Strategic": 0.0},
    "Mid-Market": {"East": 0.35, "West": 0.35, "Strategic": 0.3},
    "Enterprise": {"East": 0.1, "West": 0.1, "Strategic": 0.8},
}
#: Log-odds offsets added at every stage transition.
TEAM_LOG_ODDS = {"East": 0.0, "West": -0.35, "Strategic": 0.3}
OWNER_LOG_ODDS = {
    "Ava Thompson": 0.15,
    "Liam Carter": -0.1,
    "Mia Patel": 0.05,
    "Noah Kim": -0.1,
    "Emma Garcia": 0.2,
    "Lucas Rossi": -0.15,
    "Zoe Martin": 0.0,
    "Ethan Walker": -0.05,
    "Olivia Chen": 0.1,
    "James Mueller": -0.2,
    "Sofia Novak": 0.1,
}
SEGMENT_LOG_ODDS = {"SMB": 0.1, "Mid-Market": 0.0, "Enterprise": -0.2}
#: Stage durations are multiplied by these.
TEAM_CYCLE_MULTIPLIER = {"East": 0.85, "West": 1.0, "Strategic": 1.3}
SEGMENT_CYCLE_MULTIPLIER = {"SMB": 0.7, "Mid-Market": 1.0, "Enterprise": 1.6}
#: Expected close date at creation: created + optimism * expected win cycle * LogNormal(0, sd).
TEAM_CLOSE_OPTIMISM = {"East": 0.8, "West": 0.65, "Strategic": 0.9}
CLOSE_PLAN_LOG_SD = 0.3
#: Mean days an overdue expected close date is pushed out by (Gamma, shape SLIP_SHAPE).
TEAM_PUSH_MEAN_DAYS = {"East": 21.0, "West": 35.0, "Strategic": 45.0}
SLIP_SHAPE = 2.0
#: Days after an expected close date passes before the owner pushes it (exponential mean).
PUSH_LAG_MEAN_DAYS = 4.0

# --------------------------------------------------------------------- pipeline
PIPELINE = "default"
STAGES = ("Qualification", "Discovery", "Proposal", "Negotiation")
CONFIGURED_PROBABILITY = (0.10, 0.25, 0.60, 0.80)
#: P(leave the stage forward, or win from Negotiation) at zero offsets.
PROGRESSION_PROBABILITY = (0.60, 0.65, 0.60, 0.75)
#: Mean days in each stage at multipliers 1 (Gamma, shape STAGE_SHAPE).
STAGE_MEAN_DAYS = (15.0, 25.0, 30.0, 20.0)
STAGE_SHAPE = 2.0
#: A won deal whose natural close falls within QUARTER_PULL_DAYS after a quarter starts is
#: closed on the previous quarter's last day with this probability (if still after entering
#: Negotiation).
QUARTER_PULL_PROBABILITY = 0.5
QUARTER_PULL_DAYS = 14
LOST_REASONS = ("No budget", "Lost to competitor", "No decision", "Timing", "Price")
LOST_REASON_BY_STAGE = (
    (0.40, 0.10, 0.30, 0.15, 0.05),
    (0.25, 0.20, 0.30, 0.15, 0.10),
    (0.10, 0.35, 0.20, 0.10, 0.25),
    (0.05, 0.35, 0.15, 0.10, 0.35),
)
#: Listed amount at creation: LogNormal(log(median), sigma), rounded to 10.
AMOUNT_MEDIAN = {"SMB": 8_000.0, "Mid-Market": 30_000.0, "Enterprise": 120_000.0}
AMOUNT_LOG_SD = 0.6
#: Realised / listed amount at a win: LogNormal(mu, sigma).
AMOUNT_RATIO = {"mu": -0.05, "sigma": 0.12}
PRODUCTS = ("Platform licence", "Analytics add-on", "Support plan", "Integration", "Expansion")

# --------------------------------------------------------------------- arrivals
#: Share of deals per segment (the deal then picks an account of that segment).
DEAL_SEGMENT_SHARE = {"SMB": 0.5, "Mid-Market": 0.35, "Enterprise": 0.15}
#: Organic deals per day at the period start (for the reference size of 3000 deals),
#: before the normalisation that makes the expected total equal n_deals.
ORGANIC_BASE_PER_DAY = 1.13
REFERENCE_DEALS = 3000
ARRIVAL_TREND_PER_YEAR = float(np.log(1.15))
ARRIVAL_SEASONALITY = {"amplitude": 0.2, "peak_year_fraction": 0.12}
#: Organic arrivals in the last QUARTER_END_DAYS of a quarter are multiplied by this.
QUARTER_END_MULTIPLIER = 1.3
QUARTER_END_DAYS = 14
ORGANIC_SOURCES = {"Inbound": 0.4, "Outbound": 0.3, "Referral": 0.2, "Partner": 0.1}
SOURCE_LOG_ODDS = {
    "Inbound": 0.0,
    "Outbound": -0.35,
    "Referral": 0.5,
    "Partner": 0.2,
    "Paid Search": -0.1,
    "Social": -0.3,
    "Event": 0.15,
    "Email": -0.15,
}

# --------------------------------------------------------------------- marketing
CHANNELS = ("search", "social", "events", "email")
CHANNEL_SOURCE = {"search": "Paid Search", "social": "Social", "events": "Event", "email": "Email"}
#: Geometric adstock A_t = x_t + decay * A_{t-1} (weekly, not normalised).
ADSTOCK_DECAY = {"search": 0.3, "social": 0.5, "events": 0.7, "email": 0.2}
#: Hill saturation S(A) = A^shape / (A^shape + K^shape), K in reference-size dollars.
HALF_SATURATION = {"search": 5_000.0, "social": 6_000.0, "events": 20_000.0, "email": 1_000.0}
SATURATION_SHAPE = {"search": 1.2, "social": 1.5, "events": 1.0, "email": 1.0}
#: Extra deals per week at full saturation (reference size, before normalisation).
MAX_DEALS_PER_WEEK = {"search": 2.5, "social": 2.2, "events": 3.0, "email": 0.9}

# --------------------------------------------------------------------- activities
ACTIVITY_TYPES = ("call", "email", "meeting")
#: Activities per day in each stage, and the type mix per stage.
ACTIVITY_RATE_PER_DAY = (0.10, 0.08, 0.08, 0.10)
ACTIVITY_TYPE_BY_STAGE = (
    (0.5, 0.45, 0.05),
    (0.35, 0.4, 0.25),
    (0.25, 0.4, 0.35),
    (0.3, 0.4, 0.3),
)

# --------------------------------------------------------------------- forecast call
#: Forecast categories a rep gives a deal: "pipeline" at creation; on entering Proposal
#: "commit" with probability COMMIT_AT_PROPOSAL (the reps' optimism) else "best_case"; on
#: entering Negotiation "commit"; "closed" when won, "omitted" when lost. When an open
#: pipeline or best-case deal's close date is pushed, its rep drops it ("omitted", for good
#: unless it is won) with probability REP_DROP_PROBABILITY.
COMMIT_AT_PROPOSAL = 0.38
REP_DROP_PROBABILITY = 0.1
#: What COMMIT_AT_PROPOSAL was set for: at month-end origins, the commit roll-up of the next
#: month (open commit deals expected to close by its end) overstates that month's won deal
#: revenue by this share, on average over the months (about +25%).
COMMIT_OPTIMISM = 0.25
#: Monthly quota of an owner: QUOTA_STRETCH x the owner's mean monthly won deal revenue over
#: the last QUOTA_BASE_MONTHS months of the period, grown by exp(ARRIVAL_TREND_PER_YEAR) a
#: year from the period's last month, rounded to QUOTA_ROUND, at least QUOTA_MIN. A team's
#: quota is the sum of its owners', the company's the sum of the teams'. Quotas run from the
#: period's first month to QUOTA_MONTHS_AHEAD months after its last (the forecast horizon).
QUOTA_STRETCH = 1.2
QUOTA_BASE_MONTHS = 12
QUOTA_MONTHS_AHEAD = 12
QUOTA_ROUND = 100.0
QUOTA_MIN = 1000.0
#: Team managers' calls: each month a first call on its first business day and an update on
#: the first business day from the 15th, both at CALL_HOUR, from what the manager knew then:
#: the team's commit roll-up of the month as the deals stood at the end of the day before
#: (won so far + open commit deals expected to close by the month's end, overdue included),
#: de-biased for the reps' optimism (/ (1 + COMMIT_OPTIMISM)), x bias, rounded to CALL_ROUND.
#: Strategic's manager sandbags; East calls honestly, West a little high.
MANAGER_CALL_BIAS = {"East": 1.0, "West": 1.1, "Strategic": 0.8}
UPDATE_DAY = 15
CALL_HOUR = 9
CALL_ROUND = 100.0
