"""FDDN's channel split (``model.ratio`` of the latent width 4 * ``model.width``) is one of its declared
value rules: the config check refuses a ratio that leaves an FSB part empty, naming ``model.ratio``, with
the same line the constructor raises (it used to pass the check and fail only when the network was built,
after the run had started)."""

from __future__ import annotations

import pytest

import deblur  # noqa: F401 - declares the networks
from deblur.config import registry
from deblur.config.checks import check_train_config
from deblur.errors import UserError


@pytest.mark.parametrize(("width", "ratio"), [(8, 0.01), (8, 0.99), (2, 0.05)])
def test_a_ratio_that_empties_an_fsb_part_is_refused_by_the_check_and_the_constructor(width, ratio):
    bad = {"width": width, "ratio": ratio, "num_fdb": 1}
    with pytest.raises(UserError, match=rf"^model.ratio={ratio}: a share leaving both FSB parts") as checked:
        check_train_config({"model": {"name": "fddn", **bad}})
    with pytest.raises(ValueError) as built:
        registry.component("model", "fddn").build(**bad)
    assert str(built.value) == str(checked.value)


@pytest.mark.parametrize(("width", "ratio"), [(8, 0.5), (2, 0.1), (3, 0.9)])
def test_a_ratio_that_splits_passes(width, ratio):
    check_train_config({"model": {"name": "fddn", "width": width, "ratio": ratio}})
