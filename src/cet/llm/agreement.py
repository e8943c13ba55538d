"""Agreement of a panel of raters (LLM judges) over many items: percent agreement, Fleiss' kappa, Krippendorff's alpha.

Input, `votes_by_item`: one entry per item, each a mapping rater -> label (or a sequence of labels, the
position being the rater). A missing rating is `None` (or NaN, or the rater absent from the mapping): an
abstention. Labels are any hashable values for nominal statistics, numbers for interval alpha.

- `percent_agreement`: per item, the share of agreeing rater pairs (Fleiss' P_i), averaged over the items
  with at least 2 ratings; `pairwise_agreement` gives it per pair of raters.
- `fleiss_kappa` (nominal): Fleiss (1971), generalised to a varying number of ratings per item in the usual
  way (P_i = Σ_j n_ij(n_ij − 1) / (n_i(n_i − 1)), p_j over all ratings); items with fewer than 2 ratings are
  left out. With the same number of ratings on every item it is exactly Fleiss' kappa.
- `krippendorff_alpha` (nominal or interval): the `krippendorff` package (coincidence matrices; units with
  fewer than 2 values are not pairable and so drop out).

Degenerate cases: no item with 2 or more ratings → every statistic is None. Every rating the same single
value → percent agreement 1, but kappa and alpha are undefined (expected agreement is 1: 0/0) → None, and
the report says why. Statistics are floats in [-1, 1] (kappa and alpha may be negative: worse than chance).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from itertools import combinations
from typing import Any, Literal

from cet.errors import CetError

VotesByItem = Sequence[Mapping[Any, Any] | Sequence[Any]] | Mapping[Any, Mapping[Any, Any] | Sequence[Any]]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def normalise(votes_by_item: VotesByItem) -> list[dict[Any, Hashable]]:
    """Each item as {rater: label}, missing ratings dropped."""
    items = votes_by_item.values() if isinstance(votes_by_item, Mapping) else votes_by_item
    out = []
    for item in items:
        pairs = item.items() if isinstance(item, Mapping) else enumerate(item)
        out.append({rater: label for rater, label in pairs if not _missing(label)})
    return out


def percent_agreement(votes_by_item: VotesByItem) -> float | None:
    """Mean over items (with ≥ 2 ratings) of the share of rater pairs that agree."""
    shares = [_item_agreement(list(item.values())) for item in normalise(votes_by_item) if len(item) >= 2]
    return sum(shares) / len(shares) if shares else None


def item_agreement(labels: Sequence[Any]) -> float | None:
    """The share of agreeing pairs among one item's (non-missing) labels; None with fewer than 2."""
    labels = [label for label in labels if not _missing(label)]
    return _item_agreement(labels) if len(labels) >= 2 else None


def _item_agreement(labels: list[Hashable]) -> float:
    n = len(labels)
    return sum(c * (c - 1) for c in Counter(labels).values()) / (n * (n - 1))


def pairwise_agreement(votes_by_item: VotesByItem) -> dict[str, dict[str, Any]]:
    """Per pair of raters ("a|b"): the items both rated, and the share of those they agree on (None: none)."""
    items = normalise(votes_by_item)
    raters = sorted({rater for item in items for rater in item}, key=str)
    out = {}
    for a, b in combinations(raters, 2):
        both = [item for item in items if a in item and b in item]
        agree = sum(1 for item in both if item[a] == item[b])
        out[f"{a}|{b}"] = {"items": len(both), "agreement": agree / len(both) if both else None}
    return out


def fleiss_kappa(votes_by_item: VotesByItem) -> float | None:
    """Fleiss' kappa (nominal) over the items with ≥ 2 ratings; None when undefined."""
    rows = [Counter(item.values()) for item in normalise(votes_by_item) if len(item) >= 2]
    return fleiss_kappa_counts([dict(row) for row in rows])


def fleiss_kappa_counts(table: Sequence[Mapping[Any, int] | Sequence[int]]) -> float | None:
    """Fleiss' kappa from a table of counts: per item, how many raters chose each category (a mapping
    category -> count, or a row of counts in a fixed category order). Items with < 2 ratings are left out."""
    rows = [dict(row) if isinstance(row, Mapping) else dict(enumerate(row)) for row in table]
    rows = [row for row in rows if sum(row.values()) >= 2]
    if not rows:
        return None
    p_items = []
    totals: Counter[Any] = Counter()
    for row in rows:
        n = sum(row.values())
        p_items.append(sum(c * (c - 1) for c in row.values()) / (n * (n - 1)))
        totals.update(row)
    grand = sum(totals.values())
    p_bar = sum(p_items) / len(p_items)
    p_e = sum((c / grand) ** 2 for c in totals.values())
    if math.isclose(p_e, 1.0):
        return None  # one category only: chance agreement is 1, kappa is 0/0
    return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha(votes_by_item: VotesByItem, level: Literal["nominal", "interval"] = "nominal") -> float | None:
    """Krippendorff's alpha; None when undefined (no pairable values, or a single value throughout)."""
    import numpy as np

    try:
        import krippendorff
    except ImportError:
        raise CetError("Krippendorff's alpha needs the krippendorff package: pip install krippendorff==0.9.0") from None

    items = normalise(votes_by_item)
    pairable = [item for item in items if len(item) >= 2]
    if not pairable or len({label for item in pairable for label in item.values()}) < 2:
        return None
    raters = sorted({rater for item in items for rater in item}, key=str)
    if level == "nominal":
        codes: dict[Hashable, int] = {}
        for item in items:
            for label in item.values():
                codes.setdefault(label, len(codes))
        value = codes.__getitem__
    elif level == "interval":
        for item in items:
            for label in item.values():
                if isinstance(label, bool) or not isinstance(label, int | float):
                    raise ValueError(f"interval alpha needs numeric ratings, got {label!r}")
        value = float
    else:
        raise ValueError(f"unknown level of measurement {level!r} (nominal or interval)")
    data = np.full((len(raters), len(items)), np.nan)
    for u, item in enumerate(items):
        for c, rater in enumerate(raters):
            if rater in item:
                data[c, u] = value(item[rater])
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement=level))
    return None if math.isnan(alpha) else alpha


def agreement_report(votes_by_item: VotesByItem, interval: bool | None = None) -> dict[str, Any]:
    """Everything above for one panel over many items. Interval alpha is added when `interval` is true, or
    when `interval` is None and every rating is a number."""
    items = normalise(votes_by_item)
    rated = [item for item in items if len(item) >= 2]
    values = [label for item in items for label in item.values()]
    raters = sorted({rater for item in items for rater in item}, key=str)
    if interval is None:
        interval = bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    report: dict[str, Any] = {
        "items": len(items),
        "items_rated": len(rated),  # items with ≥ 2 ratings: the ones the statistics use
        "raters": [str(r) for r in raters],
        "ratings": len(values),
        "missing": len(items) * len(raters) - len(values),  # abstentions: (item, rater) slots without a rating
        "categories": dict(sorted(Counter(str(v) for v in values).items())),
        "percent_agreement": percent_agreement(items),
        "pairwise": pairwise_agreement(items),
        "fleiss_kappa": fleiss_kappa(items),
        "krippendorff_alpha": {"nominal": krippendorff_alpha(items, "nominal")},
    }
    if interval:
        report["krippendorff_alpha"]["interval"] = krippendorff_alpha(items, "interval")
    notes = []
    if not rated:
        notes.append("no item has 2 or more ratings: agreement is undefined")
    elif len({v for item in rated for v in item.values()}) < 2:
        notes.append("every rating is the same value: kappa and alpha are undefined (chance agreement is 1)")
    report["notes"] = notes
    return report
