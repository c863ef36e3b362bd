"""Clustering recipients by interests and visit behaviour, and a cluster as a segment. Pure.

Features: one column per interest (1 if the recipient holds it) and four visit-behaviour
columns (log visits, active days, evening share, days since the last visit); every column is
standardised, then KMeans runs for each candidate k and the k with the best silhouette wins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from hexcast.core.errors import InvalidInput
from targeting import MAX_USER_IDS, SegmentDefinition

__all__ = [
    "BEHAVIOUR",
    "Clustering",
    "Features",
    "cluster",
    "cluster_segment",
    "features",
    "profiles",
]

BEHAVIOUR = ("log_visits", "active_days", "evening_share", "days_since_last")


@dataclass(frozen=True, slots=True)
class Features:
    user_ids: list[str]
    columns: list[str]
    matrix: NDArray[np.float64]


def features(rows: Sequence[Mapping[str, Any]], interests: Sequence[str], *, horizon_days: float) -> Features:
    """One row per recipient (user_id, interests, visits, active_days, evening,
    days_since_last); a recipient without visits counts ``horizon_days`` since the last one."""
    vocab = {name: i for i, name in enumerate(interests)}
    matrix = np.zeros((len(rows), len(vocab) + len(BEHAVIOUR)))
    for n, r in enumerate(rows):
        for name in r["interests"]:
            if name in vocab:
                matrix[n, vocab[name]] = 1.0
        visits = r["visits"]
        since = r["days_since_last"]
        matrix[n, len(vocab):] = (
            math.log1p(visits), r["active_days"], r["evening"] / visits if visits else 0.0,
            horizon_days if since is None else min(float(since), horizon_days),
        )
    return Features([r["user_id"] for r in rows], [*interests, *BEHAVIOUR], matrix)


@dataclass(frozen=True, slots=True)
class Clustering:
    k: int
    labels: NDArray[np.int32]
    silhouettes: dict[int, float]


def cluster(f: Features, *, ks: Sequence[int] = range(2, 9), seed: int = 0,
            sample_size: int = 3000) -> Clustering:
    """KMeans on the standardised features for each k in ``ks``; the best silhouette wins
    (scored on a fixed random sample of at most ``sample_size`` recipients)."""
    if len(f.user_ids) <= max(ks):
        raise InvalidInput(f"need more than {max(ks)} recipients to cluster", field="ks")
    scaled = StandardScaler().fit_transform(f.matrix)
    scores: dict[int, float] = {}
    labelled: dict[int, NDArray[np.int32]] = {}
    for k in ks:
        labelled[k] = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(scaled).astype(np.int32)
        scores[k] = float(silhouette_score(scaled, labelled[k], random_state=seed,
                                           sample_size=min(sample_size, len(f.user_ids))))
    best = max(scores, key=lambda k: scores[k])
    return Clustering(best, labelled[best], scores)


def profiles(f: Features, labels: NDArray[np.int32]) -> list[dict[str, float]]:
    """Per cluster: its size and the mean of every (unscaled) feature column."""
    out = []
    for label in sorted(set(labels.tolist())):
        members = f.matrix[labels == label]
        row = {"cluster": float(label), "size": float(len(members))}
        row.update(zip(f.columns, members.mean(axis=0).tolist(), strict=True))
        out.append(row)
    return out


def cluster_segment(f: Features, labels: NDArray[np.int32], label: int, **extra: Any) -> SegmentDefinition:
    """The segment of exactly one cluster's recipients (an explicit user-id list)."""
    members = sorted(u for u, lab in zip(f.user_ids, labels.tolist(), strict=True) if lab == label)
    if not members:
        raise InvalidInput(f"cluster {label} is empty", field="label")
    if len(members) > MAX_USER_IDS:
        raise InvalidInput(f"cluster {label} has {len(members)} recipients; a user-id segment "
                           f"holds at most {MAX_USER_IDS}", field="label")
    return SegmentDefinition(user_ids=members, **extra)
