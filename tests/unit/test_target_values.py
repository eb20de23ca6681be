"""A ``_target_`` network has no schema, so ``model.width=abc`` used to reach its constructor (a
TypeError from inside torch); the config check reads the scalar kind of each argument from its annotation
(or, without one, its default) and names the key."""

from __future__ import annotations

import pytest
from torch import nn

from deblur.config.checks import check_train_config
from deblur.config.target import target_problems
from deblur.errors import UserError


class Net(nn.Module):
    def __init__(self, width: int = 8, scale: float = 1.0, gate=True, act: str = "relu", widths=(4, 8),
                 extra: int | None = None, note=None) -> None:  # fmt: skip
        super().__init__()


TARGET = f"{__name__}.Net"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("width", "abc", "model.width='abc': an integer"),
        ("width", 1.5, "model.width=1.5: an integer"),
        ("width", True, "model.width=True: an integer"),
        ("scale", "x", "model.scale='x': a number"),
        ("gate", 1, "model.gate=1: true or false"),
        ("act", 3, "model.act=3: a string"),
        ("width", None, "model.width=None: an integer"),
    ],
)
def test_a_value_of_the_wrong_scalar_kind_names_the_key(key, value, expected):
    with pytest.raises(UserError, match=rf"^{expected} \({TARGET} takes {key}: "):
        check_train_config({"model": {"_target_": TARGET, key: value}})


def test_values_of_the_right_kind_and_arguments_without_a_scalar_kind_pass():
    cfg = {"_target_": TARGET, "width": 16, "scale": 2, "gate": False, "act": "gelu", "widths": [1, 2],
           "extra": 3, "note": {"any": [1]}}  # fmt: skip
    assert target_problems(cfg) == []
    assert target_problems({"_target_": TARGET, "extra": None}) == []


def test_a_target_config_with_a_name_is_told_to_drop_the_name():
    from deblur.models.build import build_model

    cfg = {"_target_": TARGET, "name": "mynet", "width": 4}
    expected = r"^model.name='mynet': a model config with _target_ \(.*Net\) has no name; remove model.name"
    with pytest.raises(UserError, match=expected):
        check_train_config({"model": cfg})
    with pytest.raises(ValueError, match=expected):
        build_model(cfg)
