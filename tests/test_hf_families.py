"""The family adapters as a set: every family has a logit-parity case in test_hf_parity.py, and each parity config,
imported, is reproduced by exactly one family (its own), so export can never pick between two."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).parent))
from test_hf_parity import CONFIGS  # noqa: E402

from opencodegen.model.hf import config_from_hf, hf_architecture  # noqa: E402
from opencodegen.model.hf_families import FAMILIES  # noqa: E402


def test_every_family_has_a_parity_case():
    assert {CONFIGS[name]().architectures[0] for name in CONFIGS} == set(FAMILIES)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_exactly_one_family_reproduces_each_imported_config(name):
    hf = CONFIGS[name]().to_dict()
    arch, config = config_from_hf(hf, name)
    exact = [a for a, family in FAMILIES.items() if all(family.requirements(config).values())]
    assert exact == [arch] == [hf_architecture(config)]
