"""The image encoders `impala` and `vit`: shapes on 64×64 and MinAtar-sized frames, gradients to every
parameter, and each one as the image part of `multi` in a real agent."""

import pytest
import torch

from tests.test_dreamer import TINY_DREAMER
from tests.test_tdmpc2 import TINY as TINY_TDMPC2
from worldmodels.config import load_all, load_config
from worldmodels.errors import ConfigError
from worldmodels.registry import ENCODERS
from worldmodels.spaces import ObsSpec
from worldmodels.train import Trainer

load_all()
SMALL = {"impala": {"channels": [4, 8], "out_dim": 16}, "vit": {"transformer": {"dim": 16, "heads": 2}}}


@pytest.mark.parametrize("shape", [(64, 64, 3), (10, 10, 4)], ids=["64x64", "minatar"])
@pytest.mark.parametrize("name", ["impala", "vit"])
def test_image_encoders_give_features_and_train_every_parameter(name, shape):
    enc = ENCODERS.build(name, SMALL[name], obs_spec=ObsSpec(shape, "uint8"))
    frames = torch.randint(0, 256, (3, 2, *shape), dtype=torch.uint8)  # [B, T, H, W, C]
    features = enc(frames)
    assert features.shape == (3, 2, enc.out_dim) and torch.isfinite(features).all()
    features.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_vit_patches_divide_the_frame():
    assert ENCODERS.build("vit", None, obs_spec=ObsSpec((10, 10, 4), "uint8")).position.shape[1] == 4  # 5×5 patches
    assert ENCODERS.build("vit", None, obs_spec=ObsSpec((64, 64, 3), "uint8")).position.shape[1] == 64  # 8×8
    with pytest.raises(ConfigError, match="patch 8 does not divide the 10×10 frame"):
        ENCODERS.build("vit", {"patch": 8}, obs_spec=ObsSpec((10, 10, 4), "uint8"))


@pytest.mark.parametrize("name", ["impala", "vit"])
@pytest.mark.parametrize(
    "preset, tiny, env", [("dreamerv3", TINY_DREAMER, "wm/Dummy-v0"), ("tdmpc2", TINY_TDMPC2, "wm/DummyContinuous-v0")]
)
def test_each_image_encoder_is_the_image_part_of_multi_in_an_agent(preset, tiny, env, name, tmp_path):
    options = [f"agent.encoder.image.{k}={v}" for k, v in SMALL[name].items()]
    tiny = [o for o in tiny if not o.startswith(("agent.encoder.image.", "agent.encoder="))]  # the CNN's options
    cfg = load_config(
        preset,
        [
            *tiny,
            f"env.id={env}",
            "env.obs=pixels",
            "env.size=[16, 16]",
            "env.max_episode_steps=10",
            f"agent.encoder.image.name={name}",
            *options,
            "train.steps=30",
            "train.prefill=16",
            "train.batch_size=2",
            "train.seq_len=8",
            "train.ratio=16",
            "train.eval_every=0",
            "train.eval_episodes=1",
            "train.threads=1",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "run")
    built = {type(m).__name__ for m in trainer.agent.encoder.modules()}
    assert {"impala": "ImpalaEncoder", "vit": "ViTEncoder"}[name] in built and "CNNEncoder" not in built
    assert trainer.run()["updates"] > 0
    trainer.close()


def test_bfloat16_conv_stacks_keep_float32_weights_outputs_and_gradients():
    """`precision: bfloat16` on the cnn encoder and decoder: the convolutions run under autocast, while the
    weights (the master copy), their gradients and the outputs stay float32 and near the float32 stack's."""
    from worldmodels.registry import DECODERS

    spec = ObsSpec((64, 64, 3), "uint8")
    frames = torch.randint(0, 256, (2, 3, *spec.shape), dtype=torch.uint8)
    out = {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        enc = ENCODERS.build("cnn", {"depth": 8, "precision": precision}, obs_spec=spec)
        dec = DECODERS.build("cnn", {"depth": 8, "precision": precision}, in_dim=enc.out_dim, obs_spec=spec)
        features = enc(frames)
        loss = dec(features).loss(frames).mean()
        loss.backward()
        params = [*enc.parameters(), *dec.parameters()]
        assert features.dtype == torch.float32 and dec(features).mean.dtype == torch.float32
        assert all(p.dtype == p.grad.dtype == torch.float32 and p.grad.abs().sum() > 0 for p in params)
        out[precision] = features, loss
    torch.testing.assert_close(out["bfloat16"][0], out["float32"][0], rtol=0.05, atol=0.05)
    torch.testing.assert_close(out["bfloat16"][1], out["float32"][1], rtol=0.02, atol=0.0)
    with pytest.raises(ConfigError, match="precision"):
        ENCODERS.build("cnn", {"precision": "float16"}, obs_spec=spec)


@pytest.mark.parametrize("native", [True, False])
def test_bfloat16_on_a_cpu_without_it_warns_with_the_fix(monkeypatch, native):
    """Where the CPU has no native bfloat16 its kernels run far slower than float32: `precision` warns, naming
    the setting to change, and still returns bfloat16 autocast (the numbers are right, only slow)."""
    import warnings

    from worldmodels.nn import precision as module

    monkeypatch.setattr(module, "cpu_has_bfloat16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with module.precision("bfloat16", "cpu"):
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16 and torch.is_autocast_enabled("cpu")
        with module.precision("float32", "cpu"):
            assert not torch.is_autocast_enabled("cpu")
    said = [str(w.message) for w in caught]
    assert said == ([] if native else [said[0]]) and all("float32" in s for s in said)


def test_image_loss_is_the_summed_squared_error_and_leaves_the_target_alone():
    """`ImagePrediction.loss` (a fused kernel, the target scaled in place on a copy) gives exactly the
    squared error of the frame as pixels / 255 − 0.5, with the same gradients, for uint8 and float targets."""
    from worldmodels.decoders.prediction import ImagePrediction

    raw = torch.randn(6, 3, 8, 8, requires_grad=True)
    pred = raw.permute(0, 2, 3, 1).reshape(2, 3, 8, 8, 3)  # as the cnn decoder hands it over: not contiguous
    frames = torch.randint(0, 256, (2, 3, 8, 8, 3), dtype=torch.uint8)
    for target in (frames, frames.float()):
        kept = target.clone()
        loss = ImagePrediction(pred).loss(target)
        reference = ((pred - (frames.float() / 255.0 - 0.5)) ** 2).sum((-3, -2, -1))
        assert loss.shape == (2, 3) and torch.equal(loss, reference) and torch.equal(target, kept)
        grad, ref_grad = (torch.autograd.grad(x.sum(), raw)[0] for x in (loss, reference))
        assert torch.equal(grad, ref_grad)
