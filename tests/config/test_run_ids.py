"""Run ids: the same settings always map to the same folder; a changed network gets new ids."""

from __future__ import annotations

import json
import re

import pytest

from suite import cli
from suite.config import RunConfig
from suite.errors import SuiteError
from suite.store.runs_table import runs_dataframe


def test_run_identity():
    base = RunConfig(method="fast_bat").resolved()
    assert base.name == "fast_bat-fashion_mnist-small_cnn-eps8-s0"
    assert re.fullmatch(r"fast_bat-fashion_mnist-small_cnn-eps8-s0-[0-9a-f]{10}", base.run_id)
    explicit = RunConfig(method="fast_bat", eps=8, hparams={"lmbda": 10.0, "ll_step": 5000.0})
    assert explicit.resolved().run_id == base.run_id
    assert RunConfig(method="fast_bat", hparams={"lmbda": 10.0}).resolved().run_id == base.run_id
    assert RunConfig(method="fast_bat", hparams={"lmbda": 1.0}).resolved().run_id != base.run_id
    assert RunConfig(method="fast_bat", seed=1).resolved().run_id != base.run_id
    assert RunConfig(method="fast_bat", pgd_steps=10).resolved().run_id != base.run_id

    from suite.commands.run import config_from_args

    parse = cli.build_parser().parse_args
    assert config_from_args(parse(["run", "--lmbda", "10", "--eps", "8"])).resolved().run_id == base.run_id
    assert config_from_args(parse(["run", "--lmbda", "5"])).resolved().run_id != base.run_id


# Run ids of fast_at on CIFAR-10 at eps 8, seed 0, before the reference's networks replaced the
# suite's PreActResNet-18 and WRN-16-8 (computed with that code).
IDS_BEFORE_THE_REFERENCE_NETWORKS = {
    "small_cnn": "fast_at-cifar10-small_cnn-eps8-s0-3fc42ddb24",
    "resnet18": "fast_at-cifar10-resnet18-eps8-s0-43719c1867",
    "resnet50": "fast_at-cifar10-resnet50-eps8-s0-0517c341a3",
    "preact_resnet18": "fast_at-cifar10-preact_resnet18-eps8-s0-b11f3af9d8",
    "wrn16_8": "fast_at-cifar10-wrn16_8-eps8-s0-bab102e795",
}


@pytest.mark.parametrize("arch", sorted(IDS_BEFORE_THE_REFERENCE_NETWORKS))
def test_only_the_changed_networks_get_new_run_ids(arch):
    run_id = RunConfig(method="fast_at", dataset="cifar10", arch=arch).resolved().run_id
    if arch in ("preact_resnet18", "wrn16_8"):  # other functions now: old records are not their runs
        assert run_id != IDS_BEFORE_THE_REFERENCE_NETWORKS[arch]
    else:
        assert run_id == IDS_BEFORE_THE_REFERENCE_NETWORKS[arch]


@pytest.mark.parametrize("arch", ["preact_resnet18", "wrn16_8"])
def test_records_of_the_networks_before_the_reference_ones_are_listed_apart(arch, tmp_path):
    from suite.config.run_config import recorded_arch

    old_config = RunConfig(method="fast_at", dataset="cifar10", arch=arch).resolved().to_dict()
    del old_config["dropout"]  # what the suite recorded then: no dropout setting
    old_id = IDS_BEFORE_THE_REFERENCE_NETWORKS[arch]
    new = RunConfig(method="fast_at", dataset="cifar10", arch=arch).resolved()
    assert recorded_arch(old_id, old_config) == f"{arch}@r1"
    assert recorded_arch(new.run_id, new.to_dict()) == arch
    small = RunConfig(method="fast_at", dataset="cifar10", arch="resnet18").resolved()
    assert recorded_arch(small.run_id, small.to_dict()) == "resnet18"
    for run_id, config in ((old_id, old_config), (new.run_id, new.to_dict())):
        folder = tmp_path / "runs" / run_id
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"run_id": run_id, "config": config}))
        (folder / "summary.json").write_text(json.dumps({"status": "finished"}))
    frame = runs_dataframe(tmp_path)
    assert dict(zip(frame["run_id"], frame["arch"])) == {old_id: f"{arch}@r1", new.run_id: arch}
    assert list(runs_dataframe(tmp_path, arch=arch)["run_id"]) == [new.run_id]


def test_dropout_is_resolved_into_the_run_id():
    wrn = RunConfig(method="fast_at", dataset="cifar10", arch="wrn16_8")
    assert wrn.resolved().dropout == 0.1
    assert RunConfig(**{**wrn.to_dict(), "dropout": 0.1}).resolved().run_id == wrn.resolved().run_id
    assert RunConfig(**{**wrn.to_dict(), "dropout": 0.0}).resolved().run_id != wrn.resolved().run_id
    assert RunConfig(arch="resnet18", dataset="cifar10").resolved().dropout is None
    with pytest.raises(SuiteError, match="no dropout"):
        RunConfig(arch="resnet18", dataset="cifar10", dropout=0.1).resolved()
    variant = RunConfig(method="fast_at", dataset="cifar10", arch="preact_resnet18_preact_shortcut").resolved().run_id
    assert variant.startswith("fast_at-cifar10-preact_resnet18_preact_shortcut-eps8-s0-")


def test_records_of_a_renamed_network_keep_the_name_they_were_made_with(tmp_path):
    """preact_resnet18_wong was renamed preact_resnet18_preact_shortcut: its records stay listed (and
    selectable) under the old name, and a new run under it is refused with the new one."""
    config = RunConfig(method="fast_at", dataset="cifar10", arch="resnet18").resolved().to_dict()
    config["arch"] = "preact_resnet18_wong"
    old_id = "fast_at-cifar10-preact_resnet18_wong-eps8-s0-0123456789"
    folder = tmp_path / "runs" / old_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"run_id": old_id, "config": config}))
    (folder / "summary.json").write_text(json.dumps({"status": "finished"}))
    assert list(runs_dataframe(tmp_path, arch="preact_resnet18_wong")["run_id"]) == [old_id]
    with pytest.raises(SuiteError, match="use --arch preact_resnet18_preact_shortcut"):
        RunConfig(method="fast_at", dataset="cifar10", arch="preact_resnet18_wong").resolved()


def test_integer_hyperparameter_maps_to_the_same_run_id():
    assert RunConfig(hparams={"lmbda": 10}).resolved().run_id == RunConfig().resolved().run_id
