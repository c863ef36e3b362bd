"""Clustering recipients: features, k by silhouette, profiles, and a cluster as a segment."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from analysis.clusters import BEHAVIOUR, cluster, cluster_segment, features, profiles
from hexcast.core.errors import InvalidInput
from targeting.segments import MAX_USER_IDS, SegmentDefinition

INTERESTS = ["a/x", "a/y", "b/x", "b/y", "c/x"]
GROUPS = {0: ["a/x", "a/y"], 1: ["b/x", "b/y"], 2: ["c/x"]}


def _rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        g = i % 3
        visits = 5 + 10 * g
        out.append({"user_id": f"u{i}", "group": g, "interests": GROUPS[g] + ["unknown/z"],
                    "visits": visits, "active_days": min(visits, 5), "evening": visits // 2,
                    "days_since_last": 3 + g + rng.uniform(0, 0.1)})
    return out


def test_features_encode_interests_and_behaviour() -> None:
    rows = _rows(3)
    f = features(rows, INTERESTS, horizon_days=90)
    assert f.columns == [*INTERESTS, *BEHAVIOUR]
    assert f.matrix.shape == (3, len(INTERESTS) + 4)
    assert f.matrix[0, :5].tolist() == [1, 1, 0, 0, 0]  # unknown interests are ignored
    none = {"user_id": "n", "interests": [], "visits": 0, "active_days": 0, "evening": 0,
            "days_since_last": None}
    g = features([none], INTERESTS, horizon_days=90)
    assert g.matrix[0].tolist() == [0, 0, 0, 0, 0, 0.0, 0, 0.0, 90]


def test_kmeans_finds_the_planted_groups_by_silhouette() -> None:
    rows = _rows(300)
    f = features(rows, INTERESTS, horizon_days=90)
    result = cluster(f, ks=range(2, 6), seed=0)
    assert result.k == 3
    assert result.silhouettes[3] == max(result.silhouettes.values())
    for g in GROUPS:  # every planted group lands in one cluster
        assert len({int(lab) for lab, r in zip(result.labels, rows, strict=True) if r["group"] == g}) == 1
    table = profiles(f, result.labels)
    assert sum(p["size"] for p in table) == 300
    assert sorted(p["a/x"] for p in table) == [0.0, 0.0, 1.0]
    assert cluster(f, ks=range(2, 6), seed=0).labels.tolist() == result.labels.tolist()


def test_a_cluster_becomes_an_exact_user_id_segment() -> None:
    rows = _rows(30)
    f = features(rows, INTERESTS, horizon_days=90)
    labels = np.array([r["group"] for r in rows], dtype=np.int32)
    segment = cluster_segment(f, labels, 1, holdout_pct=5)
    assert isinstance(segment, SegmentDefinition)
    assert segment.user_ids == sorted(r["user_id"] for r in rows if r["group"] == 1)
    assert segment.holdout_pct == 5
    with pytest.raises(InvalidInput):
        cluster_segment(f, labels, 7)


def test_too_few_recipients_and_too_large_clusters_are_refused() -> None:
    with pytest.raises(InvalidInput):
        cluster(features(_rows(5), INTERESTS, horizon_days=90), ks=range(2, 9))
    big = [{"user_id": f"u{i}", "interests": [], "visits": 0, "active_days": 0, "evening": 0,
            "days_since_last": None} for i in range(MAX_USER_IDS + 1)]
    f = features(big, INTERESTS, horizon_days=90)
    with pytest.raises(InvalidInput):
        cluster_segment(f, np.zeros(len(big), dtype=np.int32), 0)
