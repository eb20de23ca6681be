"""A loss that reads more than the network's output (``loss=msfs``: MSFS-Net's encoder re-encodes the
prediction) is refused, naming ``loss.name``, for any other network, before anything is built."""

from __future__ import annotations

import pytest

import deblur  # noqa: F401 - declares the built-in networks and losses
from deblur.config.checks import check_train_config
from deblur.errors import UserError


@pytest.mark.parametrize("model", [{"name": "fddn"}, {"name": "nafnet"}, {"_target_": "torch.nn.Identity"}])
def test_loss_msfs_is_refused_for_a_network_without_msfs_encoder(model):
    expected = r"^loss.name=msfs: trains only model.name=msfs .*losses for it: "
    with pytest.raises(UserError, match=expected) as err:
        check_train_config({"model": model, "loss": {"name": "msfs"}})
    assert "msfs," not in str(err.value).split("losses for it: ")[1]  # the list offers the losses that fit


@pytest.mark.parametrize(("model", "loss"), [("msfs", "msfs"), ("msfs", "l1"), ("nafnet", "fft")])
def test_a_loss_any_network_trains_or_its_own_network_passes(model, loss):
    check_train_config({"model": {"name": model}, "loss": {"name": loss}})
