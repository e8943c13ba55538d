"""Drift signals: PSI near zero for the same population and large for a shifted one; CUSUM quiet on a steady pass
rate and alarming on a persistent drop; the report asks for retraining on either."""

from __future__ import annotations

import numpy as np
import pytest

from cet.serving.drift import cusum, drift_report, psi, psi_categorical, task_language


def test_psi_separates_a_shift_from_sampling_noise() -> None:
    rng = np.random.default_rng(0)
    same = psi(rng.lognormal(6, 0.5, 2000), rng.lognormal(6, 0.5, 2000))
    moved = psi(rng.lognormal(6, 0.5, 2000), rng.lognormal(6.6, 0.5, 2000))  # tasks ~1.8x longer
    assert same < 0.05 and moved > 0.25
    with pytest.raises(ValueError):
        psi([], [1.0])


def test_cusum_stays_quiet_on_a_steady_rate_and_finds_a_drop() -> None:
    rng = np.random.default_rng(1)
    steady = rng.random(2000) < 0.35
    dropped = np.concatenate([rng.random(500) < 0.35, rng.random(1500) < 0.20])
    quiet, alarm = cusum(steady, target=0.35, k=0.05, h=8.0), cusum(dropped, target=0.35, k=0.05, h=8.0)
    assert not quiet["alarm"] and alarm["alarm"] and alarm["alarm_at"] > 500  # after the drop, not before


def test_the_report_asks_for_retraining_on_either_signal() -> None:
    rng = np.random.default_rng(2)
    short = ["Write f(x)." + " word" * int(n) for n in rng.integers(5, 30, 300)]
    long = ["Write f(x)." + " word" * int(n) for n in rng.integers(60, 120, 300)]
    steady = list(rng.random(300) < 0.35)
    calm = drift_report(short, short[::-1], steady, 0.35)
    assert not calm["retrain"] and calm["psi"]["length"] < 0.1
    moved = drift_report(short, long, steady, 0.35)
    assert moved["retrain"] and moved["shifted"] == ["length"] and "input drift" in moved["why"]


def test_a_shift_of_language_is_seen() -> None:
    python = [f"Fix this:\n```python\ndef f{n}(x):\n    return x\n```" for n in range(100)]
    javascript = [f"Fix this:\n```js\nfunction f{n}(x) {{ return x; }}\n```" for n in range(100)]
    assert task_language(python[0]) == "python" and task_language(javascript[0]) == "javascript"
    assert task_language("Reverse a string.") == "none"
    assert psi_categorical(["python"] * 50, ["python"] * 50) == 0.0
    mixed = drift_report(python, python[:50] + javascript[:50], [True] * 100, 0.5)
    assert mixed["psi"]["language"] > 0.25 and "language" in mixed["shifted"]


def test_a_shift_of_topic_is_seen_in_the_embeddings(embedder) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    strings = ["reverse the words of a sentence", "count the vowels in a string", "check if a word is a palindrome",
               "capitalise every word of a title", "remove duplicate letters from text"]
    graphs = ["find the shortest path in a weighted graph", "detect a cycle in a directed graph",
              "count connected components of an undirected graph", "topological order of task dependencies",
              "minimum spanning tree of a network"]

    def tasks(topics: list[str], n: int) -> list[str]:
        return [f"{topics[int(i)]} ({j})" for j, i in enumerate(rng.integers(0, len(topics), n))]

    same = drift_report(tasks(strings, 200), tasks(strings, 200), [True] * 60, 0.5, embed=embedder.embed)
    moved = drift_report(tasks(strings, 200), tasks(graphs, 200), [True] * 60, 0.5, embed=embedder.embed)
    assert same["psi"]["topic_clusters"] < 0.25 < moved["psi"]["topic_clusters"]
    assert "topic_clusters" in moved["shifted"] and moved["retrain"]
