"""Degradations: seeded, never empty, each kind does what it says on realistic requirement texts."""

from __future__ import annotations

import random
import re

import pytest

from cet.data.degradations import (
    CHATTER,
    DEGRADATIONS,
    EVAL_CHATTER,
    TRAIN_CHATTER,
    add_noise,
    add_typos,
    degrade,
    degrade_randomly,
    is_code_line,
    split_units,
)

EXERCISM = """# Lantern Relay

Write a function `relay(lanterns, k)` that returns how many lanterns are lit after `k` passes.

## Rules

- Each lantern is either on or off.
- A row of 10 lanterns must be processed in exactly 3 passes.
- Return an int, never a string.
1. The first pass lights every second lantern.

## Example

```python
>>> relay([1, 0, 1], 2)
2
```
"""

HUMANEVAL = '''from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    """ Check if in given list of numbers, are any two numbers closer to each other than
    given threshold.
    >>> has_close_elements([1.0, 2.0, 3.0], 0.5)
    False
    """
'''

FIXTURES = {"exercism": EXERCISM, "humaneval": HUMANEVAL}


@pytest.mark.parametrize("kind", DEGRADATIONS)
@pytest.mark.parametrize("name", FIXTURES)
def test_every_kind_changes_text_deterministically(kind: str, name: str) -> None:
    text = FIXTURES[name]
    first = degrade(text, kind, random.Random(7))
    assert first.strip()
    assert first != text
    assert degrade(text, kind, random.Random(7)) == first


@pytest.mark.parametrize("kind", [k for k in DEGRADATIONS if k != "structure"])
def test_different_seeds_give_different_texts(kind: str) -> None:
    outputs = {degrade(EXERCISM, kind, random.Random(seed)) for seed in range(10)}
    assert len(outputs) > 1


def test_unknown_kind_raises_naming_known_kinds() -> None:
    with pytest.raises(ValueError, match="unknown degradation 'shout'.*structure.*scramble"):
        degrade(EXERCISM, "shout", random.Random(0))


@pytest.mark.parametrize("kind", DEGRADATIONS)
@pytest.mark.parametrize("text", ["x", "```", "# H", "1", "- 2", ">>> f()", "a. b.", "   "])
def test_never_empty_for_non_empty_input(kind: str, text: str) -> None:
    for seed in range(5):
        assert degrade(text, kind, random.Random(seed))


def test_structure_leaves_one_paragraph_without_markers() -> None:
    flat = degrade(EXERCISM, "structure", random.Random(0))
    assert "\n" not in flat
    assert "  " not in flat
    for marker in ("#", "```", ">>>", "- ", "1. "):
        assert marker not in flat
    assert flat.startswith("Lantern Relay Write a function")
    assert "relay([1, 0, 1], 2) 2" in flat  # the code lines' text stays
    assert "Each lantern is either on or off." in flat


def test_structure_drops_doctest_prompts_in_docstrings() -> None:
    flat = degrade(HUMANEVAL, "structure", random.Random(0))
    assert ">>>" not in flat and "\n" not in flat
    assert "has_close_elements([1.0, 2.0, 3.0], 0.5) False" in flat


def test_noise_adds_one_to_three_chatter_sentences_outside_code() -> None:
    for seed in range(20):
        noisy = degrade(EXERCISM, "noise", random.Random(seed))
        added = sum(noisy.count(sentence) for sentence in CHATTER)
        assert 1 <= added <= 3
        assert "```python\n>>> relay([1, 0, 1], 2)\n2\n```" in noisy  # never inside the code block


STOPWORDS = frozenset(
    "a an the i i'm im it its it's this that these those is are was were be been am to of in on at for from by with "
    "and or but so if as about there there's here my our we me us you your someone somewhere some any all "
    "has have had not no yet still just kind let know like up off until since".split()
)


def content_words(sentence: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z'-]*", sentence.lower()) if w not in STOPWORDS}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def test_chatter_alias_is_the_training_set() -> None:
    assert CHATTER is TRAIN_CHATTER


def test_eval_chatter_is_disjoint_from_training_chatter() -> None:
    assert len(EVAL_CHATTER) >= len(TRAIN_CHATTER)
    assert len(set(EVAL_CHATTER)) == len(EVAL_CHATTER) and len(set(TRAIN_CHATTER)) == len(TRAIN_CHATTER)
    assert not set(EVAL_CHATTER) & set(TRAIN_CHATTER)
    for ours in EVAL_CHATTER:
        for theirs in TRAIN_CHATTER:
            assert jaccard(content_words(ours), content_words(theirs)) < 0.5, (ours, theirs)
    everything = TRAIN_CHATTER + EVAL_CHATTER
    for a in everything:  # counting a sentence in a text must not also count another that contains it
        assert not any(a != b and a.lower() in b.lower() for b in everything)


def test_eval_chatter_is_plain_prose_the_other_degradations_leave_alone() -> None:
    for sentence in EVAL_CHATTER:
        assert [unit.text for unit in split_units(sentence)] == [sentence]  # one prose sentence
        assert not is_code_line(sentence)
        assert sentence[0].isupper() and sentence[-1] in ".?!"
        assert degrade(sentence, "ambiguous", random.Random(0)) == "Something like this: " + sentence  # nothing vague


def test_noise_inserts_what_it_is_given_and_trains_on_the_training_set_by_default() -> None:
    for seed in range(30):
        default = degrade(EXERCISM, "noise", random.Random(seed))
        assert default == degrade(EXERCISM, "noise", random.Random(seed), chatter=TRAIN_CHATTER)
        assert default == add_noise(EXERCISM, random.Random(seed))
        noisy = degrade(EXERCISM, "noise", random.Random(seed), chatter=EVAL_CHATTER)
        added = [sentence for sentence in EVAL_CHATTER if sentence in noisy]
        assert 1 <= len(added) <= 3 and sum(noisy.count(sentence) for sentence in added) == len(added)
        assert not any(sentence in noisy for sentence in TRAIN_CHATTER)
        assert "```python\n>>> relay([1, 0, 1], 2)\n2\n```" in noisy
    inserted = {s for seed in range(200) for s in EVAL_CHATTER if s in degrade(HUMANEVAL, "noise", random.Random(seed),
                                                                                chatter=EVAL_CHATTER)}
    assert inserted == set(EVAL_CHATTER)  # every evaluation sentence is used


def test_noise_with_a_custom_or_empty_chatter_set() -> None:
    assert "Only this." in degrade("Do the thing.", "noise", random.Random(0), chatter=["Only this."])
    with pytest.raises(ValueError, match="chatter"):
        degrade("Do the thing.", "noise", random.Random(0), chatter=())
    text, kinds = degrade_randomly(EXERCISM, random.Random(3), n_kinds=5, chatter=EVAL_CHATTER)
    assert "noise" in kinds and not any(sentence in text for sentence in TRAIN_CHATTER)


def test_typos_swap_letters_but_spare_identifiers() -> None:
    sentence = "Please compute_total(items) carefully, then sorted(values) becomes deterministic output"
    typo = add_typos(sentence, random.Random(0), rate=1.0)
    assert typo != sentence
    assert "compute_total(items)" in typo and "sorted(values)" in typo
    assert len(typo) == len(sentence)
    assert sorted(typo) == sorted(sentence)  # only swaps
    assert "Please" not in typo and "carefully" not in typo


def test_fragment_keeps_a_subset_in_order() -> None:
    units = [unit.text for unit in split_units(EXERCISM)]
    for seed in range(20):
        kept = [unit.text for unit in split_units(degrade(EXERCISM, "fragment", random.Random(seed)))]
        assert 1 <= len(kept) < len(units)
        assert 0.4 * len(units) <= len(kept) <= 0.75 * len(units)
        positions = [units.index(text) for text in kept]
        assert positions == sorted(positions)


def test_fragment_of_one_sentence_cuts_words() -> None:
    sentence = "Return the sum of every even number in the list"
    cut = degrade(sentence, "fragment", random.Random(1))
    assert sentence.startswith(cut) and 0 < len(cut) < len(sentence)


def test_ambiguous_removes_numbers_and_type_names_but_not_identifiers() -> None:
    text = "Return a list of 3 int values from row_2 and x1, at most 10.5 strings."
    vague = degrade(text, "ambiguous", random.Random(0))
    assert not re.search(r"\b(3|10\.5)\b", vague)
    assert not re.search(r"\b(list|int|strings)\b", vague)
    assert "row_2" in vague and "x1" in vague
    assert vague.startswith("Return a collection of ")


def test_ambiguous_leaves_code_blocks_alone() -> None:
    vague = degrade(EXERCISM, "ambiguous", random.Random(0))
    assert "```python\n>>> relay([1, 0, 1], 2)\n2\n```" in vague
    assert "10" not in vague and "3 passes" not in vague
    assert "1. The first pass" in vague  # the list marker is not a number to blur


def test_ambiguous_replaces_about_half_the_backticked_spans() -> None:
    text = " ".join(f"Use `name_{i}` here." for i in range(40))
    vague = degrade(text, "ambiguous", random.Random(3))
    replaced = vague.count("Use it here.")
    assert 8 <= replaced <= 32
    assert vague.count("`") == 2 * (40 - replaced)


def test_scramble_reorders_the_same_units() -> None:
    units = [unit.text for unit in split_units(EXERCISM)]
    for seed in range(10):
        shuffled = [unit.text for unit in split_units(degrade(EXERCISM, "scramble", random.Random(seed)))]
        assert sorted(shuffled) == sorted(units)
        assert shuffled != units


def test_scramble_of_two_sentences_always_swaps() -> None:
    for seed in range(20):
        assert (
            degrade("First do this. Then do that.", "scramble", random.Random(seed)) == "Then do that. First do this."
        )


def test_degrade_randomly_applies_distinct_kinds() -> None:
    text, kinds = degrade_randomly(EXERCISM, random.Random(5), n_kinds=3)
    assert len(kinds) == len(set(kinds)) == 3
    assert set(kinds) <= set(DEGRADATIONS)
    assert text and text != EXERCISM
    assert degrade_randomly(EXERCISM, random.Random(5), n_kinds=3) == (text, kinds)
    chosen = {tuple(degrade_randomly(EXERCISM, random.Random(seed))[1]) for seed in range(10)}
    assert len(chosen) > 1


@pytest.mark.parametrize("n_kinds", [0, 6])
def test_degrade_randomly_rejects_impossible_counts(n_kinds: int) -> None:
    with pytest.raises(ValueError, match="n_kinds"):
        degrade_randomly(EXERCISM, random.Random(0), n_kinds=n_kinds)
