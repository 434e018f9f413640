"""Which exercises an RL step samples: uniformly, or by learnability.

A GRPO group whose samples all pass (or all fail) has no advantage and teaches nothing, so a policy that already
solves most of its exercises spends most of its sampling on nothing. Learnability sampling (Foster & Foerster 2025,
"Learning to Reason at the Frontier of Learnability") draws an exercise's family with weight p(1 - p), p being the
family's running pass rate under the current policy: the families it solves half the time come first, those it
always or never solves rarely. A family here is an exercise's generator recipe (its first part: `floats`, `sets`,
...) or, without one, its source (`mined`, `multi_turn`: `family_of`).

The pass rates are counts decayed by `decay` each step, so they follow the policy as it changes; a family's
estimate starts at 1/2 (one pass in two samples, a uniform prior) and returns there when it is not drawn for a
while, so no family is starved for good. The counts are part of the objective's checkpointed state: a resumed
stage draws what an uninterrupted one would."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from .examples import Example


def family_of(example: Example) -> str:
    """The generator recipe's first part (`floats`, `sets`, ...); else the id's first part, which for the exercises
    `ocg exercises build` writes is their source (`mined/...`, `multi_turn/...`); else the file the row came from."""
    recipe = example.meta.get("recipe") if isinstance(example.meta, dict) else None
    if recipe:
        return str(recipe).split("/")[0]
    return example.id.split("/")[0] if "/" in example.id else example.source


class LearnabilityCurriculum:
    """Running pass counts per family, and draws weighted by p(1 - p) of them."""

    def __init__(self, examples: list[Example], decay: float = 0.9, floor: float = 0.01):
        keys = [family_of(e) for e in examples]
        self.families = sorted(set(keys))
        index = {f: i for i, f in enumerate(self.families)}
        self.of_example = np.array([index[k] for k in keys])
        self.members = [np.flatnonzero(self.of_example == i) for i in range(len(self.families))]
        self.decay, self.floor = decay, floor
        self.passes = np.zeros(len(self.families))
        self.samples = np.zeros(len(self.families))

    def pass_rates(self) -> np.ndarray:
        return (self.passes + 1) / (self.samples + 2)

    def weights(self) -> np.ndarray:
        """Each family's share of the next draws: p(1 - p) plus a floor, normalised."""
        p = self.pass_rates()
        w = p * (1 - p) + self.floor
        return w / w.sum()

    def draw(self, rng: np.random.Generator, n: int) -> list[int]:
        """n exercise indices: a family by weight, then one of its exercises uniformly, for each draw."""
        fams = rng.choice(len(self.families), size=n, p=self.weights())
        return [int(self.members[f][rng.integers(len(self.members[f]))]) for f in fams]

    def counts(self, picked: list[int], passes: list[int], samples: list[int]) -> tuple[list[float], list[float]]:
        """Per-family (passes, samples) of one process's groups, to be summed over processes before `update`."""
        p, s = np.zeros(len(self.families)), np.zeros(len(self.families))
        for i, k, n in zip(picked, passes, samples):
            p[self.of_example[i]] += k
            s[self.of_example[i]] += n
        return p.tolist(), s.tolist()

    def update(self, passes: list[float], samples: list[float]) -> None:
        self.passes = self.decay * self.passes + np.asarray(passes)
        self.samples = self.decay * self.samples + np.asarray(samples)

    def state_dict(self) -> dict[str, Any]:
        return {"families": self.families, "passes": self.passes.tolist(), "samples": self.samples.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("families") != self.families:
            raise UserError(f"the checkpoint's curriculum has the exercise families {state.get('families')}, but this "
                            f"stage's exercises have {self.families}: resume with the data the stage started with")
        self.passes, self.samples = np.asarray(state["passes"], float), np.asarray(state["samples"], float)
