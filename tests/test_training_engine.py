"""The DiffusionEngine's training step on the tiny model: learning, trainable parameters, EMA."""
import torch

from tests.training_helpers import fixed_batch, toy_config
from sgm.util import instantiate_from_config


def _model(**overrides):
    """The toy model without its LR warm-up (so that one step moves the weights)."""
    torch.manual_seed(0)
    return instantiate_from_config(toy_config(**{"model.params.scheduler_config": None, **overrides}).model)


def _loss_at_fixed_noise(model, batch, x):
    torch.manual_seed(123)  # same sigmas, noise and dropout every time
    return model.loss_fn(model.model, model.denoiser, model.conditioner, x, batch).mean()


def test_optimizer_steps_reduce_the_loss_on_a_fixed_batch():
    torch.set_num_threads(1)
    model = _model(**{"model.params.use_ema": False}).train()
    model.learning_rate = 1e-3
    batch = fixed_batch(batch_size=1, num_frames=2, size=64)
    x = model.encode_first_stage(model.get_input(batch))
    opt = model.configure_optimizers()
    with torch.no_grad():
        before = _loss_at_fixed_noise(model, batch, x).item()
    for _ in range(6):
        loss = _loss_at_fixed_noise(model, batch, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = _loss_at_fixed_noise(model, batch, x).item()
    assert after < 0.7 * before, (before, after)


def test_temporal_trainable_parameters_train_only_temporal_layers():
    torch.set_num_threads(1)
    model = _model(**{"model.params.trainable_parameters": "temporal", "model.params.use_ema": False}).train()
    model.learning_rate = 1e-3
    opt = model.configure_optimizers()
    net = model.model.diffusion_model
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    assert names and all(any(k in n for k in ("time_stack", "time_mixer", "time_pos_embed")) for n in names)
    assert any("time_mixer" in n for n in names) and any("time_stack" in n for n in names)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    batch = fixed_batch(batch_size=1, num_frames=2, size=64)
    loss, _ = model.shared_step(batch)
    loss.backward()
    opt.step()
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= names


def test_ema_tracks_the_weights():
    torch.set_num_threads(1)
    model = _model(**{"model.params.use_ema": True, "model.params.ema_decay_rate": 0.9}).train()
    model.learning_rate = 1e-2
    opt = model.configure_optimizers()
    name, param = next((n, p) for n, p in model.model.named_parameters() if "time_mixer" in n)
    shadow_name = model.model_ema.m_name2s_name[name]
    start = getattr(model.model_ema, shadow_name).clone()
    loss, _ = model.shared_step(fixed_batch(batch_size=1, num_frames=2, size=64))
    loss.backward()
    opt.step()
    model.update_ema()
    # first update: decay = min(0.9, (1 + 1) / (10 + 1))
    d = min(0.9, 2 / 11)
    torch.testing.assert_close(getattr(model.model_ema, shadow_name), d * start + (1 - d) * param.detach())
    assert not torch.equal(getattr(model.model_ema, shadow_name), start)
    with model.ema_scope():
        torch.testing.assert_close(param.detach(), getattr(model.model_ema, shadow_name))
    assert not torch.equal(param.detach(), getattr(model.model_ema, shadow_name))


def test_train_step_benchmark_tiny(capsys):
    """scripts/benchmark/train_step.py --tiny runs one timed step and reports time and memory."""
    import importlib.util
    import json

    from tests.training_helpers import REPO

    spec = importlib.util.spec_from_file_location("train_step", REPO / "scripts" / "benchmark" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--tiny", "--steps", "1", "--warmup", "0", "--frames", "2"])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["frames"] == 2 and report["precision"] == "fp32" and report["device"] == "cpu"
    assert report["sec_per_step_median"] > 0 and report["cpu_peak_rss_gib"] > 0
    assert report["trainable_params_m"] > 0
    assert report["ema"] is True  # the toy config keeps an EMA, and a training step updates it


def test_training_from_a_checkpoint_without_ema_starts_the_ema_at_its_weights(tmp_path):
    """Released checkpoints hold no EMA: loading one into a use_ema model works and the EMA starts there."""
    from safetensors.torch import save_file

    source = _model(**{"model.params.use_ema": False})
    with torch.no_grad():
        for p in source.model.parameters():
            p.add_(0.01)  # differ from the fresh model's own random weights
    path = tmp_path / "no_ema.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = _model(**{"model.params.use_ema": True, "model.params.ckpt_path": str(path)})
    for name, p in model.model.named_parameters():
        shadow = getattr(model.model_ema, model.model_ema.m_name2s_name[name])
        assert torch.equal(shadow, p.detach().float()), name
        assert torch.equal(p, dict(source.model.named_parameters())[name])


def test_ema_averages_only_the_parameters_that_train():
    model = _model(**{"model.params.trainable_parameters": "temporal", "model.params.use_ema": True})
    tracked = set(model.model_ema.m_name2s_name)
    temporal = {n for n, p in model.model.named_parameters() if p.requires_grad}
    assert tracked == temporal and 0 < len(temporal) < len(list(model.model.parameters()))
    params = dict(model.model.named_parameters())
    t_name = next(iter(temporal))
    s_name = next(n for n in params if n not in temporal)
    with torch.no_grad():
        params[t_name].add_(1.0)  # the network moves away from its EMA
    spatial_before = params[s_name].detach().clone()
    with model.ema_scope():  # temporal layers take the EMA's weights, frozen layers keep theirs
        torch.testing.assert_close(params[t_name].detach(), getattr(model.model_ema, model.model_ema.m_name2s_name[t_name]))
        assert torch.equal(params[s_name], spatial_before)


def test_ema_that_cannot_follow_a_sharded_network_is_refused_at_train_start():
    """A strategy that shards parameters (FSDP) changes their shapes: training refuses to start instead of
    averaging the wrong tensors."""
    import pytest

    model = _model(**{"model.params.trainable_parameters": "temporal", "model.params.use_ema": True})
    model.check_ema_follows_network()  # as built: fine
    name, param = next((n, p) for n, p in model.model.named_parameters() if p.requires_grad)
    param.data = param.data.flatten()[:1]  # what a rank holds of a sharded, flattened parameter
    with pytest.raises(ValueError, match="EMA cannot follow the network.*use_ema=false"):
        model.on_train_start()
