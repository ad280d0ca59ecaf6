"""The shipped reference models of the synthetic problem (``tests/fixtures/synthetic/``) are what
``tests.synthetic`` trains: trained again here, on this machine's arithmetic, each lands in the
same accuracy band as its shipped copy. Bit-for-bit equality is not asked for (another CPU trains
other bits from the same seed: the reason the models are shipped); a change of the problem, the
nets, the recipe or the checkpoint format that moves the models out of the band fails here, and
``python -m tests.synthetic`` regenerates them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import REFERENCE_MODELS, evaluate, reference_models, train_model
from unlearning.modules import load_checkpoint_meta

#: How far a retrained reference may land from its shipped copy, per test metric: about twice the
#: spread over training seeds, a far larger perturbation than another CPU's last bits. Measured
#: ranges over seeds 0-3 (original) and 1-4 (oracle): forget accuracy 0.000 and 0.057, retain
#: 0.004 and 0.001, test 0.072 and 0.067, simple MIA 0.028 and 0.035.
BAND = {"forget_acc": 0.12, "retain_acc": 0.05, "test_acc": 0.15, "simple_mia": 0.08}


@pytest.mark.parametrize("name", list(REFERENCE_MODELS))
def test_shipped_reference_models_are_reproducible(name: str, tmp_path: Path) -> None:
    cls, seed, data_kw = REFERENCE_MODELS[name]
    shipped = reference_models()[name]
    retrained = train_model(tmp_path, name, cls, seed, **data_kw)
    assert load_checkpoint_meta(shipped)["net"] == load_checkpoint_meta(retrained)["net"]
    got = {}
    for which, path in (("shipped", shipped), ("retrained", retrained)):
        got[which] = evaluate(cls.load_from_checkpoint(path, map_location="cpu"), tmp_path, **data_kw)
    for key, band in BAND.items():
        assert abs(got["shipped"][key] - got["retrained"][key]) <= band, (key, got)
