"""Reference accuracy of ETS(A,A,A), seasonal naive and Holt-Winters on real
daily data (UCI Bike Sharing, Washington DC, 2011-2012), from statsmodels.

Run (any Python 3.10+; figures below were made with CPython 3.11.7):
      python3 -m venv /tmp/refvenv
      /tmp/refvenv/bin/pip install statsmodels==0.14.4 numpy==2.2.6 pandas==2.2.3 scipy==1.15.3
      (pandas 3.x breaks statsmodels 0.14.4: deprecate_kwarg TypeError on import)
      /tmp/refvenv/bin/python tests/reference/ets_reference.py > tests/reference/ets_reference.json

The data are read from data/bike_sharing_daily.csv next to this file (see
data/README.md for source, licence CC BY 4.0, and checks).

Protocol (the Rust test recomputes our own figures on exactly this):
- Series: each of the columns casual, registered, cnt, as float.
- Case "all-open": the daily series as it is (n = 731). m = 7, H = 14,
  training window W = 364, K = 8 origins o_j = n - H - 7*j, j = 0..7.
  The origin index is the first forecast day. Training = y[o_j - W : o_j],
  actuals = y[o_j : o_j + H].
- Case "closed-tue-wed": drop every Tuesday and Wednesday (Python
  date.weekday() in {1, 2}; Monday = 0). The open-day series z has m = 5,
  H = 10 (two calendar weeks), W = 260, K = 8 origins o_j = len(z) - 10 - 5*j.
  Training = z[o_j - 260 : o_j], actuals = z[o_j : o_j + 10].
- Methods, per case, series and origin:
  ets_aaa: statsmodels ETSModel(train, error="add", trend="add",
    seasonal="add", seasonal_periods=m).fit(disp=False).forecast(H)
    (undamped ETS(A,A,A)); its 80% interval from
    get_prediction(start=len(train), end=len(train)+H-1).summary_frame(alpha=0.2)
    columns pi_lower / pi_upper; "inside" counts actuals with
    pi_lower <= actual <= pi_upper.
  seasonal_naive: forecast for step h (1-based) = train[W - m + ((h-1) % m)].
  holt_winters: statsmodels ExponentialSmoothing(train, trend="add",
    seasonal="add", seasonal_periods=m, initialization_method="estimated")
    .fit().forecast(H).
- MASE (one origin) = mean(|actual - forecast|) / scale, where
  scale = mean(|train[t] - train[t-m]|) for t = m .. W-1 (in-sample seasonal
  naive MAE on the training window).
- Per series and case: mean of the K per-origin MASE values per method, and
  ETS coverage = (sum of "inside") / (K*H).
- Origins are listed in order j = 0..7 (latest first); "date" is the calendar
  date of the first forecast day. Floats are rounded to 6 decimals.
Training windows are passed as pandas Series with a default RangeIndex (no
dates; statsmodels 0.14.4's ETS get_prediction fails on bare numpy arrays).
Fits are used as statsmodels returns them; Holt-Winters raises a
ConvergenceWarning on most registered/cnt windows, listed in "fit_warnings".
"""

import csv
import datetime as dt
import json
import os
import platform
import warnings

import numpy as np
import pandas as pd
import scipy
import statsmodels
from statsmodels.tsa.exponential_smoothing.ets import ETSModel
from statsmodels.tsa.holtwinters import ExponentialSmoothing

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "bike_sharing_daily.csv")
SERIES = ["casual", "registered", "cnt"]
K = 8
ALPHA = 0.2  # 80% interval

CASES = {
    # name: (closed weekdays, m, H, W, origin step)
    "all-open": (set(), 7, 14, 364, 7),
    "closed-tue-wed": ({1, 2}, 5, 10, 260, 5),
}


def r6(x):
    return round(float(x), 6)


def load():
    with open(DATA, newline="") as f:
        rows = list(csv.DictReader(f))
    dates = [dt.date.fromisoformat(r["date"]) for r in rows]
    cols = {s: np.array([float(r[s]) for r in rows]) for s in SERIES}
    return dates, cols


def mase(actual, forecast, scale):
    return float(np.mean(np.abs(actual - forecast)) / scale)


def run_case(dates, y, closed, m, H, W, step, notes, tag):
    keep = [i for i, d in enumerate(dates) if d.weekday() not in closed]
    z = y[keep]
    zd = [dates[i] for i in keep]
    origins = []
    full = {"ets_aaa": [], "seasonal_naive": [], "holt_winters": []}
    for j in range(K):
        o = len(z) - H - step * j
        train = z[o - W:o]
        actual = z[o:o + H]
        assert len(train) == W and len(actual) == H
        scale = float(np.mean(np.abs(train[m:] - train[:-m])))

        with warnings.catch_warnings(record=True) as w_ets:
            warnings.simplefilter("always")
            ts = pd.Series(train)  # RangeIndex: get_prediction fails on bare ndarrays
            ets = ETSModel(ts, error="add", trend="add", seasonal="add",
                           seasonal_periods=m).fit(disp=False)
            f_ets = np.asarray(ets.forecast(H))
            sf = ets.get_prediction(start=len(train),
                                    end=len(train) + H - 1).summary_frame(alpha=ALPHA)
            lo = np.asarray(sf["pi_lower"])
            hi = np.asarray(sf["pi_upper"])
        with warnings.catch_warnings(record=True) as w_hw:
            warnings.simplefilter("always")
            hw = ExponentialSmoothing(ts, trend="add", seasonal="add",
                                      seasonal_periods=m,
                                      initialization_method="estimated").fit()
            f_hw = np.asarray(hw.forecast(H))
        for model, ws in (("ets_aaa", w_ets), ("holt_winters", w_hw)):
            for x in ws:
                notes.append(f"{tag} {zd[o].isoformat()} {model}: "
                             f"{x.category.__name__}: {str(x.message)[:80]}")

        f_sn = np.array([train[W - m + ((h - 1) % m)] for h in range(1, H + 1)])
        inside = int(np.sum((actual >= lo) & (actual <= hi)))
        full["ets_aaa"].append(mase(actual, f_ets, scale))
        full["seasonal_naive"].append(mase(actual, f_sn, scale))
        full["holt_winters"].append(mase(actual, f_hw, scale))
        origins.append({
            "j": j,
            "origin_index": o,
            "date": zd[o].isoformat(),
            "scale": r6(scale),
            "mase": {
                "ets_aaa": r6(mase(actual, f_ets, scale)),
                "seasonal_naive": r6(mase(actual, f_sn, scale)),
                "holt_winters": r6(mase(actual, f_hw, scale)),
            },
            "ets_inside": inside,
        })
    mean = {k: r6(np.mean(v)) for k, v in full.items()}
    return {
        "n_points": len(z),
        "mean_mase": mean,
        "ets_coverage_80": r6(sum(o["ets_inside"] for o in origins) / (K * H)),
        "origins": origins,
    }


def main():
    dates, cols = load()
    assert len(dates) == 731
    out = {
        "generated_by": (
            f"tests/reference/ets_reference.py; Python {platform.python_version()}, "
            f"statsmodels {statsmodels.__version__}, numpy {np.__version__}, "
            f"pandas {pd.__version__}, scipy {scipy.__version__}"
        ),
        "data": "data/bike_sharing_daily.csv (UCI Bike Sharing day.csv, CC BY 4.0; see data/README.md)",
        "protocol": {
            "series": SERIES,
            "origins_K": K,
            "origin_index": "first forecast day; origins listed j = 0..K-1",
            "cases": {
                "all-open": {"drop_weekdays": [], "m": 7, "H": 14, "W": 364,
                              "origins": "o_j = n - H - 7*j, n = 731"},
                "closed-tue-wed": {"drop_weekdays": [1, 2],
                                   "weekday_convention": "Python date.weekday(), Monday = 0",
                                   "m": 5, "H": 10, "W": 260,
                                   "origins": "o_j = len(z) - 10 - 5*j"},
            },
            "training": "y[o_j - W : o_j]",
            "actuals": "y[o_j : o_j + H]",
            "methods": {
                "ets_aaa": "ETSModel(train, error='add', trend='add', seasonal='add', seasonal_periods=m).fit(disp=False).forecast(H)",
                "ets_interval": "get_prediction(start=len(train), end=len(train)+H-1).summary_frame(alpha=0.2)[pi_lower, pi_upper], inside = lower <= actual <= upper",
                "seasonal_naive": "f[h] = train[W - m + ((h-1) % m)], h = 1..H",
                "holt_winters": "ExponentialSmoothing(train, trend='add', seasonal='add', seasonal_periods=m, initialization_method='estimated').fit().forecast(H)",
            },
            "mase": "mean(|actual - forecast|) / scale; scale = mean(|train[t] - train[t-m]|), t = m..W-1",
            "mean_mase": "mean over the K origins of the per-origin MASE (from full-precision per-origin values, then rounded)",
            "ets_coverage_80": "sum(ets_inside) / (K*H)",
            "rounding": "floats rounded to 6 decimals",
        },
        "series": {},
    }
    notes = []
    for s in SERIES:
        out["series"][s] = {}
        for case, (closed, m, H, W, step) in CASES.items():
            out["series"][s][case] = run_case(dates, cols[s], closed, m, H, W, step,
                                              notes, f"{s}/{case}")
    # Warnings raised during fitting (kept as they are: the fits are used
    # whatever their convergence status, exactly as statsmodels returns them).
    out["fit_warnings"] = notes
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
