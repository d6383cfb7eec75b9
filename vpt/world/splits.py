"""A fixed train/held-out split of the world's attribute combinations.

About 10% of all valid combinations never appear in training data; evaluation prompts are drawn
from them, so a generator's attribute accuracy measures composition of attributes it learned
separately, not recall of captions it saw. Membership is a hash of the combination, so the split
is the same on every machine and needs no stored list.
"""

from __future__ import annotations

import hashlib

from vpt.world.vocabulary import AttributeName, Attributes, all_attribute_combinations

HELD_OUT_PER_MILLE = 100


def is_held_out(attributes: Attributes) -> bool:
    """Whether this combination is reserved for evaluation."""
    key = "|".join(attributes.get(name).value for name in AttributeName)
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 1000 < HELD_OUT_PER_MILLE


def held_out_combinations() -> tuple[Attributes, ...]:
    """All held-out combinations, in a fixed order."""
    return tuple(a for a in all_attribute_combinations() if is_held_out(a))
