"""Consistency distillation: the boundary parametrisation, the student's sampler, the loss and engine,
the configs, and the command-line path (main.py trains a student, the sampling script samples it)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from sgm.modules.diffusionmodules.consistency import ConsistencyBoundary, ConsistencySampler, TeacherGridDiscretization
from sgm.modules.diffusionmodules.discretizer import EDMDiscretization
from sgm.util import instantiate_from_config
from tests.helpers import fill_deterministic_
from tests.training_helpers import fixed_batch

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "configs" / "distill" / "toy_consistency.yaml"
FULL = REPO / "configs" / "distill" / "svd_xt_consistency.yaml"
IDENTITY = "sgm.modules.diffusionmodules.guiders.IdentityGuider"
DISTILL_ONLY = {"sampler_config", "loss_fn_config", "target_decay", "teacher_dtype", "use_ema", "ema_decay_rate",
                "ckpt_path"}


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def toy_engine(seed: int = 0):
    torch.manual_seed(seed)
    return instantiate_from_config(OmegaConf.load(TOY).model)


# ------------------------------------------------------------------------------- parametrisation
def test_boundary_is_identity_at_sigma_min_and_the_denoiser_above():
    b = ConsistencyBoundary(sigma_data=0.5, sigma_min=0.002, timestep_scaling=10.0)
    x, d = torch.randn(3, 4, 2, 2), torch.randn(3, 4, 2, 2)
    assert torch.equal(b.apply(x, d, torch.full((3,), 0.002)), x)  # f(x, sigma_min) = x exactly
    far = b.apply(x, d, torch.full((3,), 700.0))
    torch.testing.assert_close(far, d, atol=1e-5, rtol=0)
    c_skip, c_out = b(torch.tensor([0.002, 0.01, 0.1, 1.0, 10.0]))
    assert (c_skip.diff() < 0).all() and (c_out.diff() > 0).all()  # a smooth hand-over from x to D
    with pytest.raises(ValueError, match="sigma_data"):
        ConsistencyBoundary(sigma_data=0.0)


def test_teacher_grid_steps_are_evenly_spaced_points_of_the_teacher_grid():
    grid = TeacherGridDiscretization(num_teacher_steps=25)
    assert grid.indices(4).tolist() == [0, 6, 12, 18]
    assert grid.indices(1).tolist() == [0]
    teacher = EDMDiscretization(sigma_max=700.0)(25, do_append_zero=False)
    sigmas = grid(4)
    assert torch.equal(sigmas[:-1], teacher[[0, 6, 12, 18]]) and sigmas[-1] == 0
    for bad in (0, 26):
        with pytest.raises(ValueError, match="1 to 25"):
            grid(bad)


def test_sampler_one_call_per_step_without_guidance_and_reproducible():
    sampler = ConsistencySampler(num_steps=3, eta=1.0, device="cpu")
    calls = []
    x0 = torch.full((4, 4, 2, 2), 0.3)

    def denoiser(x, sigma, c):
        calls.append(x.shape[0])
        return x0.expand_as(x)

    noise = torch.randn(4, 4, 2, 2, generator=torch.Generator().manual_seed(0))
    out = sampler(denoiser, noise, {}, uc={}, generator=torch.Generator().manual_seed(1))
    assert calls == [4, 4, 4]  # no classifier-free guidance batch: the student carries it
    again = sampler(denoiser, noise, {}, uc={}, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    # one step is f(x_T, sigma_max) of the starting noise scaled as every sgm sampler scales it
    one = sampler(denoiser, noise, {}, uc={}, num_steps=1)
    s0 = sampler.discretization(1)[0]
    expect = sampler.boundary.apply(noise * (1 + s0**2) ** 0.5, x0, torch.full((4,), float(s0)))
    torch.testing.assert_close(one, expect)


def test_eta_zero_follows_the_starting_noise_and_eta_one_draws_fresh_noise():
    def denoiser(x, sigma, c):
        return 0.5 * x / (1 + sigma.view(-1, 1, 1, 1) ** 2) ** 0.5  # any smooth x0 estimate

    noise = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    runs = {}
    for eta in (0.0, 1.0):
        sampler = ConsistencySampler(num_steps=4, eta=eta, device="cpu")
        runs[eta] = [sampler(denoiser, noise, {}, uc={}, generator=torch.Generator().manual_seed(g)) for g in (1, 2)]
    assert torch.equal(runs[0.0][0], runs[0.0][1])  # deterministic in the starting noise
    assert not torch.allclose(runs[1.0][0], runs[1.0][1])
    with pytest.raises(ValueError, match="eta"):
        ConsistencySampler(eta=1.5)


# ------------------------------------------------------------------------------ loss and engine
def test_training_step_trains_only_the_student_and_the_target_follows():
    engine = toy_engine()
    batch = fixed_batch(batch_size=2, num_frames=2)
    teacher_before = {k: v.clone() for k, v in engine.teacher_model.state_dict().items()}
    target_before = {k: v.clone() for k, v in engine.target_model.state_dict().items()}
    x = engine.encode_first_stage(engine.get_input(batch))
    loss, _ = engine(x, dict(batch))
    assert loss.item() > 0
    loss.backward()
    assert all(p.grad is None for p in engine.teacher_model.parameters())
    assert all(p.grad is None for p in engine.target_model.parameters())
    opt = torch.optim.SGD(engine.model.parameters(), lr=1.0)
    opt.step()
    engine.update_target()
    for k, v in engine.teacher_model.state_dict().items():
        assert torch.equal(v, teacher_before[k])
    name, student = next((n, p) for n, p in engine.model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0)
    target = dict(engine.target_model.named_parameters())[name]
    expected = target_before[name] + (1 - engine.target_decay) * (student.detach() - target_before[name])
    torch.testing.assert_close(target.detach(), expected)


class _NoConditioner:
    def get_unconditional_conditioning(self, batch, batch_uc=None, force_uc_zero_embeddings=None):
        return {}, {}


@pytest.mark.parametrize("skip", [1, 3, 4])
def test_skipping_step_compares_levels_k_apart_reached_by_k_teacher_steps(skip):
    """LCM's skipping step: the student at grid[n] (n a multiple of k) against the target at grid[n + k]
    (the grid's last level at most), reached by one teacher step per grid interval."""
    from sgm.modules.diffusionmodules.consistency_loss import ConsistencyDistillationLoss

    loss = ConsistencyDistillationLoss(num_teacher_steps=7, guider_config={"target": IDENTITY}, skip_steps=skip)
    grid = loss.discretization(7, do_append_zero=False)
    calls = {"student": [], "target": [], "teacher": []}

    def denoiser(network, x, sigma, c):
        calls[network].append(sigma.clone())
        return torch.zeros_like(x)  # D = 0: an Euler step from s to s' scales x by s'/s

    torch.manual_seed(0)
    for _ in range(10):
        for v in calls.values():
            v.clear()
        x0 = torch.zeros(1, 4, 2, 2)
        loss("student", "target", "teacher", denoiser, _NoConditioner(), x0, {})
        n = int(torch.argmin((grid - calls["student"][0][0]).abs()))
        m = min(n + skip, 6)
        assert n % skip == 0 and n < 6
        assert float(calls["target"][0][0]) == pytest.approx(float(grid[m]))
        assert len(calls["teacher"]) == skip  # one teacher call per grid interval (k in all, waiting at the end)
        visited = [float(s[0]) for s in calls["teacher"]]
        assert visited == pytest.approx([float(grid[min(n + j, m)]) for j in range(skip)])
    with pytest.raises(ValueError, match="skip_steps"):
        ConsistencyDistillationLoss(num_teacher_steps=7, skip_steps=7)


def test_level_weights_choose_which_levels_train():
    from sgm.modules.diffusionmodules.consistency_loss import ConsistencyDistillationLoss

    loss = ConsistencyDistillationLoss(num_teacher_steps=7, guider_config={"target": IDENTITY}, skip_steps=2,
                                       level_weights=[0, 0, 1])  # levels 0, 2, 4: only 4 trains
    grid = loss.discretization(7, do_append_zero=False)
    seen = []

    def denoiser(network, x, sigma, c):
        if network == "student":
            seen.append(float(sigma[0]))
        return torch.zeros_like(x)

    for _ in range(5):
        loss("student", "target", "teacher", denoiser, _NoConditioner(), torch.zeros(3, 4, 2, 2), {})
    assert seen == pytest.approx([float(grid[4])] * 5)
    for bad in ([1, 1], [1, -1, 1], [0, 0, 0]):
        with pytest.raises(ValueError, match="level_weights"):
            ConsistencyDistillationLoss(num_teacher_steps=7, skip_steps=2, level_weights=bad)


def test_checkpoint_holds_student_and_target_not_the_teacher():
    engine = toy_engine()
    state = engine.state_dict()
    assert not any(k.startswith("teacher_model.") for k in state)
    assert any(k.startswith("target_model.") for k in state)
    # the student is where every DiffusionEngine keeps its network: it loads and samples like any other
    plain = instantiate_from_config(OmegaConf.load(REPO / "configs" / "toy" / "svd_toy.yaml").model)
    assert {k for k in state if k.startswith("model.")} == {k for k in plain.state_dict() if k.startswith("model.")}
    other = toy_engine(seed=1)
    teacher = {k: v.clone() for k, v in other.teacher_model.state_dict().items()}
    other.load_state_dict(state, strict=True)
    assert all(torch.equal(v, teacher[k]) for k, v in other.teacher_model.state_dict().items())
    assert all(torch.equal(v, state["target_model." + k]) for k, v in other.target_model.state_dict().items())


def test_engine_refuses_other_losses_and_bad_settings():
    cfg = OmegaConf.load(TOY).model
    plain_loss = OmegaConf.load(REPO / "configs" / "toy" / "svd_toy.yaml").model.params.loss_fn_config
    bad = OmegaConf.merge(cfg, {"params": {"loss_fn_config": None}})
    bad.params.loss_fn_config = plain_loss
    with pytest.raises(ValueError, match="ConsistencyDistillationLoss"):
        instantiate_from_config(bad)
    with pytest.raises(ValueError, match="target_decay"):
        instantiate_from_config(OmegaConf.merge(cfg, {"params": {"target_decay": 1.0}}))
    with pytest.raises(ValueError, match="solver"):
        instantiate_from_config(OmegaConf.merge(cfg, {"params": {"loss_fn_config": {"params": {"solver": "rk4"}}}}))


# ------------------------------------------------------------------------------------- configs
def test_toy_config_is_the_toy_model_with_distillation():
    student = OmegaConf.to_container(OmegaConf.load(TOY).model.params)
    teacher = OmegaConf.to_container(OmegaConf.load(REPO / "configs" / "toy" / "svd_toy.yaml").model.params)
    assert {k: v for k, v in student.items() if k not in DISTILL_ONLY} == \
        {k: v for k, v in teacher.items() if k not in DISTILL_ONLY}
    guider = student["loss_fn_config"]["params"]["guider_config"]["params"]
    sampling = teacher["sampler_config"]["params"]["guider_config"]["params"]
    assert (guider["min_scale"], guider["max_scale"]) == (sampling["min_scale"], sampling["max_scale"])
    assert student["sampler_config"]["params"]["boundary_config"] == student["loss_fn_config"]["params"]["boundary_config"]


def test_full_size_config_builds_on_meta():
    from sgm.models.inflation import without_ckpt_path

    cfg = OmegaConf.load(FULL)
    with torch.device("meta"):
        engine = instantiate_from_config(without_ckpt_path(cfg.model))
    assert type(engine).__name__ == "ConsistencyDistillationEngine"
    assert next(engine.teacher_model.parameters()).dtype == torch.bfloat16
    assert next(engine.target_model.parameters()).dtype == torch.float32
    assert engine.model.diffusion_model.model_channels == 320
    assert isinstance(instantiate_from_config(cfg.model.params.sampler_config), ConsistencySampler)
    assert cfg.model.params.network_config.params.use_checkpoint is True


# -------------------------------------------------------------------------------- command line
def test_main_trains_a_student_that_the_sampling_script_samples(tmp_path):
    cfg = OmegaConf.load(TOY)
    cfg.data = OmegaConf.create({"target": "tests.training_helpers.FixedVideoDataModule",
                                 "params": {"length": 4, "num_frames": 2, "height": 64, "width": 64, "batch_size": 1}})
    config = tmp_path / "distill_mem.yaml"
    OmegaConf.save(cfg, config)
    train = subprocess.run(
        [sys.executable, "main.py", "--base", str(config), "lightning.trainer.max_steps=2",
         "lightning.trainer.enable_progress_bar=false", "lightning.callbacks.video_logger=null",
         "--logdir", str(tmp_path / "logs"), "--name", "student"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert train.returncode == 0, train.stderr[-3000:]
    ckpt = next((tmp_path / "logs").rglob("last.ckpt"))
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    assert not any(k.startswith("teacher_model.") for k in state)

    from PIL import Image
    Image.new("RGB", (64, 64), (200, 30, 30)).save(tmp_path / "red.png")
    sample = subprocess.run(
        [sys.executable, "scripts/sampling/simple_video_sample.py", "--config", str(TOY), "--ckpt", str(ckpt),
         "--input_path", str(tmp_path / "red.png"), "--output_folder", str(tmp_path / "out"), "--device", "cpu",
         "--sampler", "consistency", "--num_steps", "2", "--num_frames", "2", "--decoding_t", "2", "--seed", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert sample.returncode == 0, sample.stderr[-3000:]
    settings = json.loads((tmp_path / "out" / "red.json").read_text())
    assert settings["sampler"] == "consistency" and settings["num_steps"] == 2
    assert (tmp_path / "out" / "red.mp4").stat().st_size > 0


def test_demo_samples_a_student_with_its_consistency_sampler(tmp_path):
    """The demo takes the sampler from the model's config: a student config samples with consistency
    steps and one network call per step (no guidance batch), whatever the page's guidance fields say."""
    from PIL import Image

    from sgm.demo.form import FormValues
    from sgm.demo.handlers import DemoHandlers
    from sgm.demo.messages import Kind
    from sgm.demo.models import ModelChoice, ModelSlot, model_choices
    from sgm.inference import VideoPipeline

    engine = toy_engine().eval()
    batches = []
    forward = engine.model.diffusion_model.forward

    def counting(x, *args, **kwargs):
        batches.append(x.shape[0])
        return forward(x, *args, **kwargs)

    engine.model.diffusion_model.forward = counting
    pipe = VideoPipeline(engine, OmegaConf.load(TOY))
    slot = ModelSlot(lambda **kw: pipe)
    launch = ModelChoice(config=str(TOY))
    slot.load(launch)
    handlers = DemoHandlers(slot, model_choices(launch), str(tmp_path / "out"))
    Image.new("RGB", (64, 64), (20, 200, 60)).save(tmp_path / "in.png")
    values = FormValues(num_frames=4, num_steps=3, fps_id=6, motion_bucket_id=127, cond_aug=0.02, min_cfg=1.0,
                        max_cfg=2.5, seed=7, decoding_t=4, width=64, height=64, crop_x=0.5, crop_y=0.5)
    mp4, files, message = handlers.generate(str(tmp_path / "in.png"), values, [])
    assert message.kind == Kind.DONE, message
    assert batches == [4, 4, 4]  # 3 steps of 4 frames, no unconditional half
    settings = json.loads(Path(files[-1]).read_text())
    assert settings["num_steps"] == 3 and settings["sampler"] == "consistency"


def test_lora_distillation_trains_only_adapters_and_keeps_the_teacher_the_base_network():
    cfg = OmegaConf.merge(OmegaConf.load(TOY), OmegaConf.load(REPO / "configs" / "distill" / "lora.yaml"))
    torch.manual_seed(0)
    engine = instantiate_from_config(cfg.model)
    trainable = [n for n, p in engine.model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    for net in (engine.model, engine.teacher_model, engine.target_model):  # non-zero weights, the same by name
        fill_deterministic_(net, seed=0)
    target_before = {n: p.clone() for n, p in engine.target_model.named_parameters() if ".lora_" in n}
    # train the adapters a little so that they change the student
    opt = torch.optim.Adam([p for p in engine.model.parameters() if p.requires_grad], lr=1e-2)
    batch = fixed_batch(batch_size=1, num_frames=2)
    x = engine.encode_first_stage(engine.get_input(batch))
    for _ in range(2):
        opt.zero_grad()
        loss, _ = engine(x, dict(batch))
        loss.backward()
        opt.step()
        engine.update_target()
    # the teacher is the base network: the student with its adapters at strength 0
    from sgm.lora.adapters import set_strength

    net_in = (torch.randn(2, 4, 8, 8), torch.full((2,), 0.5))
    cond = {"crossattn": torch.randn(2, 1, 32), "vector": torch.randn(2, 768), "concat": torch.zeros(2, 4, 8, 8)}
    video = {"num_video_frames": 2, "image_only_indicator": torch.zeros(1, 2)}
    with torch.no_grad():
        teacher = engine.teacher_model(*net_in, cond, **video)
        student = engine.model(*net_in, cond, **video)
        set_strength(engine.model.diffusion_model, "consistency", 0.0)
        base = engine.model(*net_in, cond, **video)
    assert not torch.allclose(student, base)
    torch.testing.assert_close(teacher, base)
    moved = [n for n, p in engine.target_model.named_parameters() if ".lora_" in n and not torch.equal(p, target_before[n])]
    assert moved  # the target follows the student's adapters


def test_teacher_is_the_ema_of_a_training_checkpoint(tmp_path):
    """A teacher run that kept an EMA samples with it, so distillation starts teacher and student from it."""
    teacher = instantiate_from_config(OmegaConf.load(REPO / "configs" / "toy" / "svd_toy.yaml").model)
    fill_deterministic_(teacher.model, seed=0)
    teacher._new_ema()  # EMA of the filled weights ...
    fill_deterministic_(teacher.model, seed=1)  # ... which then differ from the network's
    ckpt = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": teacher.state_dict()}, ckpt)
    cfg = OmegaConf.load(TOY)
    cfg.model.params.ckpt_path = str(ckpt)
    student = instantiate_from_config(cfg.model)
    teacher.model_ema.copy_to(teacher.model)
    for net in (student.model, student.teacher_model, student.target_model):
        for (name, p), q in zip(net.named_parameters(), teacher.model.parameters()):
            assert torch.equal(p, q), name
    cfg.model.params.teacher_ema = False
    raw = instantiate_from_config(cfg.model)
    assert not torch.equal(next(raw.model.parameters()), next(student.model.parameters()))


@pytest.mark.slow
def test_toy_distill_script_trains_measures_and_reports(tmp_path, tiny_toy_run):
    """scripts/toy_distill.py from the command line on a copy of a tiny toy run (2 steps, 1 held-out clip):
    main.py trains the student with the config's sampling EMA, `--set` reaches main.py, every sampler setting
    is measured against the 25-step teacher, and the exit status says whether the target was met."""
    import shutil

    toy_run, _ = tiny_toy_run
    work = tmp_path / "toy"
    for part in ("stage3", "data"):  # the shared run stays untouched: the script writes into its workdir
        shutil.copytree(toy_run / part, work / part)
    run = subprocess.run([sys.executable, "scripts/toy_distill.py", "--workdir", str(work), "--steps", "2", "--clips", "1",
                          "--set", "model.params.ema_decay_rate=0.5"],
                         cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads((work / "distill_report.json").read_text())
    assert report["overrides"] == ["model.params.ema_decay_rate=0.5"] and report["steps"] == 2
    assert set(report["mean"]) == {f"{who}_{k}" for who in ("teacher", "student") for k in (1, 2, 4)}
    assert report["target_met"] == (run.returncode == 0) and len(report["clips"]) == 1
    saved = OmegaConf.load(work / "distill" / "configs" / "config.yaml")  # main.py's record of the run
    assert saved.model.params.use_ema is True and saved.model.params.ema_decay_rate == 0.5
    state = torch.load(work / "distill" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    assert any(k.startswith("model_ema.") for k in state)  # the sampling EMA is kept, and sampled (pipeline)


def test_toy_distill_script_refuses_a_malformed_override(tmp_path):
    run = subprocess.run([sys.executable, "scripts/toy_distill.py", "--workdir", str(tmp_path), "--set", "lr"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 2 and "--set takes KEY=VALUE" in run.stderr
