"""deblur-bench's ``<preset>+<ablation>`` reads the networks with ablations from ``conf/ablation/``
folders, not from a second list in the code: a network's ablations are declared by their folder alone."""

from __future__ import annotations

import pytest

from deblur.bench import networks


def test_the_families_are_the_ablation_folders_of_conf():
    assert networks.ablation_families() == ["fddn", "msfs"]
    assert networks.preset_overrides("msfs_small+no_fsm") == ["model=msfs_small", "ablation=msfs/no_fsm"]


def test_a_new_ablation_folder_is_a_bench_family_without_code(tmp_path, monkeypatch):
    for family in ("msfs", "nafnet"):
        (tmp_path / "ablation" / family).mkdir(parents=True)
    monkeypatch.setattr(networks, "CONF_DIR", tmp_path)
    overrides = networks.preset_overrides("nafnet_small+no_sca")
    assert overrides == ["model=nafnet_small", "ablation=nafnet/no_sca"]
    with pytest.raises(ValueError, match=r"'fddn' has no ablations \(only \['msfs', 'nafnet'\]"):
        networks.preset_overrides("fddn+no_fsb")
