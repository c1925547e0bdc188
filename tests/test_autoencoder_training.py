"""Autoencoder (first stage) training through main.py: the loss falls, resume is exact, the discriminator
switches on at its start step, the perceptual term is used only with local weights, and the full-size
temporal-decoder config builds on the meta device."""
import csv
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sgm.training import run

REPO = Path(__file__).resolve().parents[1]
TOY_AE = REPO / "configs" / "curriculum" / "toy" / "stage0_autoencoder.yaml"
TEMPORAL = REPO / "configs" / "curriculum" / "stage0_temporal_decoder.yaml"
SMALL = ["data.params.batch_size=2", "data.params.train.size=[16,16]", "lightning.trainer.log_every_n_steps=1",
         "model.params.encoder_config.params.ch_mult=[1,2]", "model.params.decoder_config.params.ch_mult=[1,2]"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from sgm.data.synthetic import write_toy_image_shards

    out = tmp_path_factory.mktemp("ae_shards")
    write_toy_image_shards(out, num_shards=1, samples_per_shard=8, size=(16, 16), seed=3)
    return out


def train(run_dir: Path, shards: Path, steps: int, *extra: str, resume: bool = False) -> Path:
    """main.py's run() for the toy autoencoder in `run_dir`; returns the run's last.ckpt."""
    if resume:
        argv = ["--resume", str(run_dir)]
    else:
        argv = ["--base", str(TOY_AE), f"data.params.train.shards={shards}", *SMALL]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SGM_RUN_DIR", str(run_dir))
        assert run([*argv, f"lightning.trainer.max_steps={steps}", *extra]) == 0  # a crash raises
    return run_dir / "checkpoints" / "last.ckpt"


def metrics(ckpt: Path):
    with open(ckpt.parent.parent / "csv" / "metrics.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("train/loss/rec")]


def state(ckpt: Path):
    return torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]


def test_reconstruction_loss_falls(tmp_path, shards):
    rows = metrics(train(tmp_path / "falls", shards, 40))
    rec = [float(r["train/loss/rec"]) for r in rows]
    assert len(rec) == 40
    # NOTE: a noisy 40-step comparison (batch-to-batch spread is larger than the fall): the last 8
    # steps average 0.66-0.72 of the first 8, depending on the per-step noise stream (StepSeed).
    assert sum(rec[-8:]) / 8 < 0.75 * sum(rec[:8]) / 8, rec
    assert all(float(r["train/disc_on"]) == 0.0 for r in rows)  # the toy config keeps the discriminator off


def test_discriminator_switches_on_at_its_start_step(tmp_path, shards):
    ckpt = train(tmp_path / "disc", shards, 5, "model.params.loss_config.params.disc_start=3")
    rows = metrics(ckpt)
    assert [float(r["train/disc_on"]) for r in rows] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert [bool(r.get("train/loss/disc")) for r in rows] == [False, False, False, True, True]
    assert all(float(r["train/loss/g"]) == 0.0 for r in rows[:3]) and all(float(r["train/loss/g"]) != 0.0 for r in rows[3:])
    # BatchNorm counts the discriminator's training passes: 3 per step once on (generator, real, fake)
    tracked = [v for k, v in state(ckpt).items() if k.startswith("loss.discriminator.") and k.endswith("num_batches_tracked")]
    assert tracked and all(int(t) == 3 * 2 for t in tracked)


def test_resume_after_a_crash_is_exact(tmp_path, shards):
    """Checkpoints every 2 steps, the discriminator on from step 2; a run that crashes in step 3 and is resumed
    from its step-2 checkpoint ends with the weights, EMA, discriminator and its BatchNorm statistics of an
    uninterrupted run."""
    from tests.training_helpers import SimulatedCrash

    common = ["model.params.loss_config.params.disc_start=2", "lightning.modelcheckpoint.params.every_n_train_steps=2"]
    straight = state(train(tmp_path / "straight", shards, 5, *common))
    with pytest.raises(SimulatedCrash):
        train(tmp_path / "crashed", shards, 5, *common,
              "lightning.callbacks.crash={target: tests.training_helpers.CrashAtStep, params: {step: 3}}")
    resumed = state(train(tmp_path / "crashed", shards, 5, "lightning.callbacks.crash=null", resume=True))
    assert set(straight) == set(resumed)
    assert any(k.startswith("model_ema.") for k in straight) and any(k.startswith("loss.discriminator.") for k in straight)
    for key, value in straight.items():
        assert torch.equal(value, resumed[key]), key


def test_perceptual_term_only_with_local_weights(tmp_path, caplog):
    from safetensors.torch import save_file

    from sgm.modules.autoencoding.losses import GeneralLPIPSWithDiscriminator
    from sgm.modules.autoencoding.lpips import LPIPS

    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    kwargs = dict(regularization_log={}, optimizer_idx=0, global_step=0)
    with caplog.at_level("WARNING"):
        off = GeneralLPIPSWithDiscriminator(disc_start=10, perceptual_weights=str(tmp_path / "missing.safetensors"))
    assert not off.perceptual_on and "perceptual loss OFF" in caplog.text
    torch.manual_seed(0)
    weights = tmp_path / "lpips.safetensors"
    save_file({k: v.contiguous() for k, v in LPIPS().state_dict().items()}, str(weights))
    on = GeneralLPIPSWithDiscriminator(disc_start=10, perceptual_weights=str(weights))
    assert on.perceptual_on
    assert not any(k.startswith("_lpips") or "vgg" in k for k in on.state_dict())  # frozen LPIPS is not checkpointed
    loss_off, _ = off(x, y, **kwargs)
    loss_on, _ = on(x, y, **kwargs)
    assert loss_off.item() == pytest.approx((x - y).abs().sum().item() / 2, rel=1e-5)
    assert loss_on.item() > loss_off.item()


def test_pixel_loss_l1_or_l2():
    from sgm.modules.autoencoding.losses import GeneralLPIPSWithDiscriminator

    x, y = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    kwargs = dict(regularization_log={}, optimizer_idx=0, global_step=0)
    l1, _ = GeneralLPIPSWithDiscriminator(disc_start=10, perceptual_weight=0.0)(x, y, **kwargs)
    l2, _ = GeneralLPIPSWithDiscriminator(disc_start=10, perceptual_weight=0.0, pixel_loss="l2")(x, y, **kwargs)
    assert l1.item() == pytest.approx((x - y).abs().sum().item() / 2, rel=1e-5)
    assert l2.item() == pytest.approx((x - y).square().sum().item() / 2, rel=1e-5)
    with pytest.raises(ValueError, match="pixel_loss must be 'l1' or 'l2'"):
        GeneralLPIPSWithDiscriminator(disc_start=10, perceptual_weight=0.0, pixel_loss="mse")


def test_trained_weights_take_the_ema_and_drop_the_loss():
    from sgm.models.autoencoder import trained_weights

    state = {"encoder.conv_in.weight": torch.zeros(2), "decoder.conv_out.bias": torch.zeros(1),
             "loss.discriminator.main.0.weight": torch.ones(1), "loss.logvar": torch.zeros(()),
             "model_ema.encoderconv_inweight": torch.full((2,), 3.0), "model_ema.decay": torch.tensor(0.99)}
    ema = trained_weights(state)
    assert set(ema) == {"encoder.conv_in.weight", "decoder.conv_out.bias"}
    assert ema["encoder.conv_in.weight"].tolist() == [3.0, 3.0] and ema["decoder.conv_out.bias"].tolist() == [0.0]
    assert trained_weights(state, ema=False)["encoder.conv_in.weight"].tolist() == [0.0, 0.0]


def test_video_decoder_with_identity_temporal_layers_decodes_as_the_image_decoder():
    from sgm.modules.autoencoding.temporal_ae import VideoDecoder, init_temporal_as_identity_
    from sgm.modules.diffusionmodules.model import Decoder

    dd = {"ch": 32, "out_ch": 3, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "in_channels": 3,
          "resolution": 16, "z_channels": 4}
    torch.manual_seed(0)
    image, video = Decoder(**dd), VideoDecoder(**dd, video_kernel_size=[3, 1, 1])
    missing = video.load_state_dict(image.state_dict(), strict=False).missing_keys
    assert missing and all("time_stack" in k or "time_mix" in k or "mix_factor" in k for k in missing)
    z = torch.randn(6, 4, 8, 8)  # two clips of 3 frames
    assert not torch.allclose(video(z, timesteps=3), image(z), atol=1e-3)  # random temporal layers
    init_temporal_as_identity_(video)
    torch.testing.assert_close(video(z, timesteps=3), image(z), rtol=0, atol=1e-6)


def test_temporal_decoder_config_builds_at_full_size_on_meta(tmp_path):
    from sgm.models.autoencoder import AutoencodingEngine
    from sgm.modules.autoencoding.temporal_ae import VideoDecoder
    from sgm.util import instantiate_from_config

    cfg = OmegaConf.load(TEMPORAL)
    cfg.model.params.ckpt_path = None
    with torch.device("meta"):
        ae = instantiate_from_config(cfg.model)
    assert isinstance(ae, AutoencodingEngine) and isinstance(ae.decoder, VideoDecoder)
    assert ae.loss.dims == 3 and ae.loss.discriminator.main[0].weight.ndim == 5   # temporal discriminator
    assert not any(p.requires_grad for p in ae.encoder.parameters())             # encoder frozen
    assert all(p.requires_grad for p in ae.decoder.parameters())
    trained = {id(p) for g in ae.ae_groups for p in g["params"]}
    assert trained == {id(p) for p in ae.decoder.parameters()}
    n_dec = sum(p.numel() for p in ae.decoder.parameters())
    n_enc = sum(p.numel() for p in ae.encoder.parameters())
    assert 60e6 < n_dec < 70e6 and 30e6 < n_enc < 40e6, (n_dec, n_enc)   # SVD's first stage (~97.7M in all)
    from tests.training_helpers import toy_video_shards

    shards = toy_video_shards(tmp_path, duration=3.0, samples=1)  # a dry run finds the shards and decodes one sample
    assert run(["--base", str(TEMPORAL), f"data.params.train.shards={shards}", "--dry-run"]) == 0


def test_toy_temporal_decoder_finetunes_from_the_image_autoencoder(tmp_path):
    """configs/curriculum/toy/stage0_temporal_decoder.yaml starts from an image autoencoder's weights (its video
    decoder's temporal layers as identities), trains the decoder on clips with the 3-d discriminator, and
    leaves the encoder as it was."""
    from safetensors.torch import save_file

    from sgm.data.synthetic import write_toy_video_shards
    from sgm.util import instantiate_from_config

    cfg = OmegaConf.load(TOY_AE)
    for part in ("encoder_config", "decoder_config"):
        cfg.model.params[part].params.ch_mult = [1, 2]
    torch.manual_seed(0)
    image_ae = instantiate_from_config(cfg.model)
    weights = tmp_path / "image_ae.safetensors"
    save_file({k: v.contiguous() for k, v in image_ae.state_dict().items()
               if not k.startswith(("loss.", "model_ema."))}, str(weights))
    shards = tmp_path / "clips"
    write_toy_video_shards(shards, num_shards=1, samples_per_shard=4, size=(16, 16), seed=5, duration=1.0)
    run_dir = tmp_path / "temporal"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SGM_RUN_DIR", str(run_dir))
        assert run(["--base", str(REPO / "configs" / "curriculum" / "toy" / "stage0_temporal_decoder.yaml"),
                    f"model.params.ckpt_path={weights}", f"data.params.train.shards={shards}",
                    "data.params.train.size=[16,16]", "data.params.batch_size=1", "lightning.trainer.max_steps=3",
                    "lightning.trainer.log_every_n_steps=1", "model.params.loss_config.params.disc_start=1",
                    "model.params.encoder_config.params.ch_mult=[1,2]",
                    "model.params.decoder_config.params.ch_mult=[1,2]"]) == 0
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    trained = state(ckpt)
    start = image_ae.state_dict()
    assert all(torch.equal(trained[k], v) for k, v in start.items() if k.startswith("encoder."))
    assert not torch.equal(trained["decoder.conv_in.weight"], start["decoder.conv_in.weight"])
    assert any(k.endswith("time_mix_conv.weight") for k in trained)
    assert [float(r["train/disc_on"]) for r in metrics(ckpt)] == [0.0, 1.0, 1.0]
