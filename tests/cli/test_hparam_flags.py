"""suite run's hyperparameter flags come from the method files; --hp sets any method's; specs take plug-ins'."""

import pytest

from suite.cli import build_parser
from suite.cli import main as cli_main
from suite.commands.run import config_from_args
from suite.config.settings import hparam_kind, method_hparams, valid_keys

PLUGIN = """
HELP = {"gamma": "step as a multiple of eps"}
LABEL = "My FGSM"


def defaults(eps):
    return {"gamma": 1.25, "mode": "a", "rounds": 2}


def step(model, x, y, eps, *, gamma, mode, rounds):
    raise NotImplementedError
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A plug-in method importable as ``flagpkg.meth`` (a dotted --method)."""
    pkg = tmp_path / "flagpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "meth.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "flagpkg.meth"


def parse(argv):
    return build_parser().parse_args(argv)


def test_built_in_flags_keep_their_names_types_and_choices(capsys):
    args = parse(["run", "--steps", "2", "--alpha", "4", "--coef", "0.1", "--lmbda", "3", "--ll-step", "85"])
    assert (args.steps, args.alpha, args.coef, args.lmbda, args.ll_step) == (2, 4.0, 0.1, 3.0, 85.0)
    assert isinstance(args.steps, int) and isinstance(args.alpha, float)
    assert parse(["run", "--alpha-factor", "1", "--noise-factor", "2"]).alpha_factor == 1.0
    assert parse(["run", "--implicit", "finite_diff"]).implicit == "finite_diff"
    with pytest.raises(SystemExit):
        parse(["run", "--implicit", "exakt"])
    assert "did you mean 'exact'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["run", "--steps", "2.5"])  # an integer hyperparameter


def test_help_shows_each_methods_own_help_and_defaults(capsys, plugin):
    with pytest.raises(SystemExit):
        parse(["run", "--method", plugin, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "fast_bat: lower-level step a in /255 (default 5000 at eps 8, 2000 at eps 16)" in out
    assert "fgsm, fast_at, n_fgsm: step size as a multiple of eps (default fgsm 1, fast_at 1.25, n_fgsm 1)" in out
    assert "pgd: attack steps k (default 10); old name --attack-" in out
    assert f"--gamma GAMMA {plugin}: step as a multiple of eps (default 1.25)" in out
    assert "standard, fgsm, fast_at, n_fgsm, fast_at_ga, pgd, fast_bat, or a module of your own" in out


def test_a_dotted_plugin_gets_flags_and_hp_sets_any_hyperparameter(plugin):
    args = parse(["run", "--method", plugin, "--gamma", "2", "--hp", "mode=b", "--hp", "rounds=3"])
    assert config_from_args(args).resolved().hparams == {"gamma": 2.0, "mode": "b", "rounds": 3}
    args = parse(["run", "--method=" + plugin, "--rounds", "4"])
    assert config_from_args(args).resolved().hparams == {"gamma": 1.25, "mode": "a", "rounds": 4}
    # --hp works for built-ins too, values read as YAML; a later --hp wins over the flag
    args = parse(["run", "--lmbda", "3", "--hp", "implicit=finite_diff", "--hp", "lmbda=5"])
    assert config_from_args(args).resolved().hparams == {"lmbda": 5.0, "ll_step": 5000.0, "implicit": "finite_diff"}


def test_hp_refusals_are_one_line(capsys, plugin):
    assert cli_main(["run", "--method", "fast_at", "--hp", "gamma=2"]) == 2
    assert "has no hyperparameter gamma; its hyperparameters: alpha_factor" in capsys.readouterr().err
    assert cli_main(["run", "--hp", "lmbda"]) == 2
    assert "--hp lmbda: expected key=value, e.g. --hp lmbda=1" in capsys.readouterr().err


def test_a_plugin_that_does_not_import_breaks_only_its_own_runs(capsys):
    args = parse(["run", "--method", "no_such_pkg.meth", "--epochs", "1"])  # parsing still works
    assert args.method == "no_such_pkg.meth"
    assert cli_main(["run", "--method", "no_such_pkg.meth", "--results-dir", "/nonexistent-dir"]) == 2
    assert "cannot import module 'no_such_pkg.meth'" in capsys.readouterr().err


def test_spec_and_set_keys_take_a_named_plugins_hyperparameters(plugin, tmp_path):
    assert "gamma" not in valid_keys() and {"gamma", "mode", "rounds"} <= set(valid_keys([plugin]))
    assert method_hparams([plugin])[plugin] == {"gamma", "mode", "rounds"}
    assert (hparam_kind("rounds", [plugin]), hparam_kind("mode", [plugin])) == ("int", "str")
    from suite.experiments.sweep import load_spec as load_sweep

    spec = tmp_path / "plug.yaml"
    spec.write_text(f"name: plug\nbase: {{method: {plugin}, gamma: 2}}\ngrid: {{rounds: [1, 3]}}\n")
    configs = load_sweep(spec, ["mode=b"]).configs()
    assert [c.hparams for c in configs] == [{"gamma": 2.0, "mode": "b", "rounds": r} for r in (1, 3)]
    spec.write_text(f"name: plug\nbase: {{method: {plugin}, rounds: 1.5}}\n")
    with pytest.raises(Exception, match="rounds must be int"):
        load_sweep(spec)


def test_hp_reads_exponent_numbers_as_numbers():
    from suite.config.hparam_flags import hparams_from_args

    args = parse(["run", "--method", "fast_bat", "--hp", "ll_step=1e3", "--hp", "lmbda=2.5e-1"])
    assert hparams_from_args(args) == {"ll_step": 1000.0, "lmbda": 0.25}


def test_a_built_in_run_imports_no_plug_in(monkeypatch):
    """An installed plug-in is imported for its flags only when it is the --method, or for --help."""
    import suite.methods as methods
    from suite.config.hparam_flags import plugin_modules

    monkeypatch.setattr(methods, "plugin_names", lambda: {"broken": "no_such_module_anywhere"})
    imported = []
    real = methods.get_method
    monkeypatch.setattr(methods, "get_method", lambda name: imported.append(name) or real(name))
    assert plugin_modules(["--method", "fast_at"]) == {} and plugin_modules([]) == {}
    assert imported == []
    assert plugin_modules(["--method", "fast_at", "--help"]) == {}  # tried, failed to import: left out
    assert imported == ["broken"]
