import subprocess
import sys

import pytest

from worldmodels.cli import main
from worldmodels.config import load_config, to_dict
from worldmodels.errors import ConfigError


def test_preset_and_overrides_resolve():
    cfg = load_config(
        "latent_mlp", ["env.id=Pendulum-v1", "train.steps=5000", "agent.imagination_horizon=7", "agent.actor_lr=3e-4"]
    )
    assert cfg.env.id == "Pendulum-v1" and cfg.train.steps == 5000
    assert cfg.agent.cfg.imagination_horizon == 7 and cfg.agent.cfg.actor_lr == pytest.approx(3e-4)
    # the resolved config round-trips through its plain form
    assert to_dict(load_config(to_dict(cfg))) == to_dict(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.stepz=5", "unknown config key 'train.stepz' (did you mean 'steps'?)"),
        ("train.steps=abc", "bad value for 'train.steps': expected an integer, got 'abc'"),
        ("train.steps=-3", "bad value for 'train.steps': expected a number > 0, got -3"),
        ("train.steps=1.5", "bad value for 'train.steps': expected an integer"),
        ("agent.gamma=1.5", "bad value for 'agent.gamma': expected a number in [0, 1]"),
        ("device=gpu", "bad value for 'device': expected one of 'auto', 'cpu', 'cuda'"),
        ("agent.encoder.name=cnnn", "unknown encoder 'cnnn' at 'agent.encoder.name'"),
        ("agent.encoder={name: cnn, vector: {hidden: 3}}", "'agent.encoder.vector' is not an option of encoder 'cnn'"),
        (
            "agent.encoder.vector.hiden=3",
            "'agent.encoder.vector.hiden' is not an option of encoder 'mlp' (did you mean 'hidden'?)",
        ),
        ("agent.use_reconstruction=yes please", "bad value for 'agent.use_reconstruction': expected true or false"),
        ("env.id.x=1", "'env.id' is a value, not a section"),
        ("steps", "expected key=value"),
    ],
)
def test_config_errors_name_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config("latent_mlp", [override])
    assert message in str(err.value)


def test_a_new_component_name_drops_the_options_the_preset_gave_its_default_component():
    """latent_mlp's preset sets options of its default encoder (`multi`) without naming it."""
    assert load_config("latent_mlp", ["agent.encoder.name=mlp"]).agent.cfg.encoder.name == "mlp"
    assert load_config("latent_mlp", ["agent.encoder.image.depth=8"]).agent.cfg.encoder.cfg.image.cfg.depth == 8


def test_unknown_preset_suggests_a_name():
    with pytest.raises(ConfigError, match="unknown preset 'latent_mpl' \\(did you mean 'latent_mlp'\\?\\)"):
        load_config("latent_mpl")


def test_cli_config_error_exits_2_with_one_line(capsys, tmp_path):
    code = main(["train", "latent_mlp", "train.stepz=5", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().count("\n") == 0 and "train.stepz" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cli_in_a_subprocess_prints_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "worldmodels.cli",
            "train",
            "latent_mlp",
            "env.id=CartPol-v1",
            "--run-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "unknown environment id 'CartPol-v1'" in proc.stderr and "did you mean 'CartPole-v1'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wm_list_prints_every_kind(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("encoder", "dynamics", "policy", "agent", "preset"):
        assert kind in out
    assert "latent_mlp" in out and "categorical" in out
    assert main(["list", "encodr"]) == 2


def test_an_option_of_a_default_component_keeps_the_agents_other_defaults(tmp_path):
    # planet's default planner is the paper's CEM (horizon 12, 10 iterations), not CEM's own defaults
    preset = tmp_path / "bare_planet.yaml"
    preset.write_text("agent: {name: planet}\n")
    planner = load_config(str(preset), ["agent.planner.population=100"]).agent.cfg.planner
    assert planner.name == "cem" and planner.cfg.population == 100
    assert planner.cfg.horizon == 12 and planner.cfg.iterations == 10
    # choosing another component starts from that component's own defaults
    mppi = load_config(str(preset), ["agent.planner.name=mppi"]).agent.cfg.planner
    assert mppi.name == "mppi"
