"""LoRA adapters (sgm.lora): exact no-ops at strength 0, merging, several adapters, files without base
weights, and the diffusers/peft names checked with peft itself on diffusers' UNet."""
import json

import pytest
import torch
from safetensors import safe_open

from sgm.lora import add_lora, load_lora, lora_state_dict, parse_lora_spec, save_lora, set_strength
from sgm.modules.diffusionmodules.util import timestep_embedding
from tests.helpers import build_tiny_model, tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def unet_inputs(T=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    B = 2
    x = torch.randn(B, T, 8, 8, 16, generator=g)
    c_noise = torch.tensor([0.3, -0.7])
    context = torch.randn(B, 1, 32, generator=g)
    time_ids = torch.tensor([[6.0, 127.0, 0.02], [3.0, 30.0, 0.1]])
    return x, c_noise, context, time_ids


def run_ours(unet, inputs):
    x, c_noise, context, time_ids = inputs
    B, T = x.shape[:2]
    y = torch.cat([timestep_embedding(time_ids[:, i], 256) for i in range(3)], dim=1)
    with torch.no_grad():
        return unet(x.flatten(0, 1), c_noise.repeat_interleave(T), context.repeat_interleave(T, 0),
                    y.repeat_interleave(T, 0), num_video_frames=T, image_only_indicator=torch.zeros(B, T))


def randomize_lora_(unet, name, seed=0):
    """Non-zero B (a trained adapter), so the adapter changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in unet.named_parameters():
            if f".lora_B.{name}." in key or f".lora_A.{name}." in key:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.fixture(scope="module")
def unet():
    return build_tiny_model(seed=0).model.diffusion_model


def test_new_adapter_is_a_no_op_and_strength_zero_is_the_base_model_exactly(unet):
    inputs = unet_inputs()
    base = run_ours(unet, inputs)
    layers = add_lora(unet, "t", rank=4, targets="temporal")
    try:
        assert layers and all(".time_stack." in n for n in layers)
        assert torch.equal(run_ours(unet, inputs), base)
        randomize_lora_(unet, "t")
        assert (run_ours(unet, inputs) - base).abs().max() > 1e-3
        set_strength(unet, "t", 0.0)
        assert torch.equal(run_ours(unet, inputs), base)
    finally:
        from sgm.lora import remove_lora

        remove_lora(unet, "t")
    assert torch.equal(run_ours(unet, inputs), base) and not any("lora" in k for k in unet.state_dict())


def test_targets_presets_and_regexes():
    unet = build_tiny_model(seed=0).model.diffusion_model
    spatial = add_lora(unet, "s", rank=2, targets="spatial")
    assert spatial and all(".transformer_blocks." in n and "time_stack" not in n for n in spatial)
    temporal_ff = add_lora(unet, "f", rank=2, targets="temporal_ff")
    blocks = {n.split(".time_stack.")[0] for n in temporal_ff}
    assert blocks and len(temporal_ff) == 4 * len(blocks)  # ff_in and ff: two linear layers each, per temporal block
    assert all(n.endswith((".ff_in.net.0.proj", ".ff_in.net.2", ".ff.net.0.proj", ".ff.net.2")) for n in temporal_ff)
    custom = add_lora(unet, "c", rank=2, targets=[r"middle_block\.1\.time_stack\.0\.attn1\.to_q$"])
    assert custom == ["middle_block.1.time_stack.0.attn1.to_q"]
    with pytest.raises(ValueError, match="matches no linear layer"):
        add_lora(unet, "x", rank=2, targets=["no_such_layer"])


def test_file_holds_only_the_adapter_with_its_metadata_and_loads_back(tmp_path):
    unet = build_tiny_model(seed=0).model.diffusion_model
    inputs = unet_inputs()
    add_lora(unet, "t", rank=4, alpha=8, targets="temporal")
    randomize_lora_(unet, "t")
    expected = run_ours(unet, inputs)
    path = tmp_path / "motion.safetensors"
    save_lora(unet, "t", str(path))
    with safe_open(str(path), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert meta["format"] == "sgm-lora" and meta["rank"] == "4" and float(meta["alpha"]) == 8.0
    assert json.loads(meta["targets"]) and all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert sorted(keys) == sorted(lora_state_dict(unet, "t"))  # the adapter alone, no base weight

    fresh = build_tiny_model(seed=0).model.diffusion_model
    assert load_lora(fresh, str(path)) == "motion"
    assert torch.equal(run_ours(fresh, inputs), expected)


def test_merged_equals_unmerged_and_two_adapters_add_up(tmp_path):
    inputs = unet_inputs()
    a = build_tiny_model(seed=0).model.diffusion_model
    add_lora(a, "t", rank=4, targets="temporal")
    add_lora(a, "s", rank=2, targets="spatial")
    randomize_lora_(a, "t", seed=1)
    randomize_lora_(a, "s", seed=2)
    set_strength(a, "t", 0.7)
    set_strength(a, "s", -0.4)
    unmerged = run_ours(a, inputs)
    save_lora(a, "t", str(tmp_path / "t.safetensors"))
    save_lora(a, "s", str(tmp_path / "s.safetensors"))
    b = build_tiny_model(seed=0).model.diffusion_model
    load_lora(b, str(tmp_path / "t.safetensors"), strength=0.7, do_merge=True)
    load_lora(b, str(tmp_path / "s.safetensors"), strength=-0.4, do_merge=True)
    merged = run_ours(b, inputs)
    err = float((merged - unmerged).norm() / unmerged.norm())
    assert err < 1e-5
    with pytest.raises(ValueError, match="merged"):
        set_strength(b, "t", 1.0)
    base = run_ours(build_tiny_model(seed=0).model.diffusion_model, inputs)
    assert float((unmerged - base).norm() / base.norm()) > 1e-3


def test_lora_spec_parsing(tmp_path):
    assert parse_lora_spec("a.safetensors") == ("a.safetensors", 1.0)
    assert parse_lora_spec("dir/a.safetensors:0.5") == ("dir/a.safetensors", 0.5)
    weird = tmp_path / "x:y.safetensors"
    weird.write_bytes(b"")
    assert parse_lora_spec(str(weird)) == (str(weird), 1.0)
    with pytest.raises(ValueError, match="strength"):
        parse_lora_spec("a.safetensors:strong")


def test_diffusers_names_run_in_peft_on_diffusers_unet_and_come_back(tmp_path):
    """Our adapter exported to diffusers/peft names, attached with peft to diffusers' UNet (holding our
    converted weights), gives our output; peft's own state dict of it loads back into ours."""
    diffusers = pytest.importorskip("diffusers")
    peft = pytest.importorskip("peft")
    from safetensors.torch import load_file, save_file

    from sgm.interop.convert import to_diffusers
    from sgm.interop.diffusers_configs import unet_config
    from sgm.interop.layout import layout_from_config
    from sgm.lora import export_diffusers

    cfg = tiny_config()
    model = build_tiny_model(seed=0, config=cfg)
    components, _ = to_diffusers(model.state_dict(), layout_from_config(cfg.model))
    theirs = diffusers.UNetSpatioTemporalConditionModel.from_config(unet_config(cfg.model, 4)).eval()
    theirs.load_state_dict(components["unet"])
    ours = model.model.diffusion_model
    add_lora(ours, "t", rank=4, alpha=8, targets="all_attention")
    randomize_lora_(ours, "t")
    inputs = unet_inputs()
    expected = run_ours(ours, inputs)

    save_lora(ours, "t", str(tmp_path / "ours.safetensors"))
    export_diffusers(str(tmp_path / "ours.safetensors"), str(tmp_path / "peft.safetensors"), ours)
    with safe_open(str(tmp_path / "peft.safetensors"), framework="pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    tensors = load_file(str(tmp_path / "peft.safetensors"))
    assert all(k.startswith("unet.") for k in tensors)
    # diffusers' SVD UNet has no add_adapter: SVD trainers attach peft's layers themselves
    theirs = peft.inject_adapter_in_model(peft.LoraConfig(r=meta["r"], lora_alpha=meta["lora_alpha"],
                                                          target_modules=meta["target_modules"]), theirs)
    result = peft.set_peft_model_state_dict(theirs, {k[len("unet."):]: v for k, v in tensors.items()})
    assert not result.unexpected_keys
    x, c_noise, context, time_ids = inputs
    with torch.no_grad():
        actual = theirs(x, c_noise, context, time_ids).sample.flatten(0, 1)
    assert float((actual - expected).norm() / expected.norm()) < 1e-4

    # peft's own names (as diffusers-based trainers save them) back into ours
    peft_sd = peft.get_peft_model_state_dict(theirs)
    save_file({f"unet.{k}": v.contiguous() for k, v in peft_sd.items()}, str(tmp_path / "theirs.safetensors"),
              metadata={"lora_adapter_metadata": json.dumps({"r": 4, "lora_alpha": 8})})
    fresh = build_tiny_model(seed=0, config=cfg).model.diffusion_model
    load_lora(fresh, str(tmp_path / "theirs.safetensors"), name="imported")
    assert torch.equal(run_ours(fresh, inputs), expected)


def test_kohya_names_patch_sgm_weights_as_comfyui_does_and_come_back(tmp_path):
    """export_kohya writes what ComfyUI's LoRA loader reads for a UNet with sgm's layer names: it maps
    `lora_unet_<diffusion_model key without .weight, dots as underscores>` to the weight and adds
    alpha / rank * up @ down (comfy/lora.py). Patching the weights that way gives our output with the adapter
    merged; and reading the kohya file back gives our adapter exactly."""
    from sgm.lora import export_kohya

    path = make_adapter(tmp_path / "pan.safetensors", targets=["temporal", "temporal_ff"], seed=3)
    out = tmp_path / "pan_kohya.safetensors"
    net = build_tiny_model(seed=0).model.diffusion_model
    n = export_kohya(str(path), str(out), net)
    with safe_open(str(out), framework="pt") as f:
        kohya = {k: f.get_tensor(k) for k in f.keys()}
    assert n == len(kohya) and all(k.startswith("lora_unet_") for k in kohya)

    inputs = unet_inputs()
    ours = build_tiny_model(seed=0).model.diffusion_model
    load_lora(ours, str(path), strength=1.0, do_merge=True)
    expected = run_ours(ours, inputs)

    patched = build_tiny_model(seed=0).model.diffusion_model
    state = {"diffusion_model." + k: v for k, v in patched.state_dict().items()}  # the names ComfyUI's model has
    key_map = {"lora_unet_" + k[len("diffusion_model."):-len(".weight")].replace(".", "_"): k
               for k in state if k.endswith(".weight")}
    used = set()
    for key in kohya:
        if key.endswith(".lora_up.weight"):
            base = key[:-len(".lora_up.weight")]
            up, down, alpha = kohya[key], kohya[base + ".lora_down.weight"], float(kohya[base + ".alpha"])
            state[key_map[base]] = state[key_map[base]] + (alpha / down.shape[0]) * (up @ down)
            used |= {key, base + ".lora_down.weight", base + ".alpha"}
    assert used == set(kohya)  # every key found its layer
    patched.load_state_dict({k[len("diffusion_model."):]: v for k, v in state.items()})
    got = run_ours(patched, inputs)
    assert float((got - expected).norm() / expected.norm()) < 1e-5
    assert float((got - run_ours(build_tiny_model(seed=0).model.diffusion_model, inputs)).norm()) > 1e-3

    back = build_tiny_model(seed=0).model.diffusion_model
    load_lora(back, str(out), strength=1.0, do_merge=True)
    assert torch.equal(run_ours(back, inputs), expected)


def test_kohya_files_of_another_model_or_with_mixed_alphas_are_refused(tmp_path):
    """A kohya file none of whose layers this UNet has, and one with a different alpha per layer, are errors
    that say so; keys that fit no layer are skipped with a warning when others do fit."""
    from safetensors.torch import save_file

    from sgm.lora import export_kohya

    net = build_tiny_model(seed=0).model.diffusion_model
    out = tmp_path / "k.safetensors"
    export_kohya(str(make_adapter(tmp_path / "a.safetensors", seed=5)), str(out), net)
    with safe_open(str(out), framework="pt") as f:
        kohya = {k: f.get_tensor(k) for k in f.keys()}
    foreign = tmp_path / "foreign.safetensors"
    save_file({"lora_unet_down_blocks_0_attn.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_down_blocks_0_attn.lora_up.weight": torch.zeros(4, 2)}, str(foreign))
    with pytest.raises(ValueError, match="no adapter for a layer of this UNet"):
        load_lora(build_tiny_model(seed=0).model.diffusion_model, str(foreign))
    mixed = dict(kohya)
    first_alpha = next(k for k in mixed if k.endswith(".alpha"))
    mixed[first_alpha] = torch.tensor(1.0)
    save_file(mixed, str(tmp_path / "mixed.safetensors"))
    with pytest.raises(ValueError, match="different alpha per layer"):
        load_lora(build_tiny_model(seed=0).model.diffusion_model, str(tmp_path / "mixed.safetensors"))
    extra = {**kohya, "lora_unet_no_such_layer.lora_up.weight": torch.zeros(4, 2)}
    save_file(extra, str(tmp_path / "extra.safetensors"))
    assert load_lora(build_tiny_model(seed=0).model.diffusion_model, str(tmp_path / "extra.safetensors")) == "extra"


def test_convert_lora_script_writes_kohya_and_diffusers_names_and_reads_them_back(tmp_path):
    """scripts/convert_lora.py from the command line: ours -> kohya -> ours and ours -> diffusers -> ours give
    back the same tensors, rank and alpha; a missing file is a usage error (exit 2)."""
    import subprocess
    import sys

    from sgm.lora import read_lora
    from tests.helpers import REPO, TINY_CONFIG

    src = make_adapter(tmp_path / "pan.safetensors", targets="all_attention", seed=4)
    net = build_tiny_model(seed=0).model.diffusion_model
    original = read_lora(str(src), net)

    def run(*args):
        return subprocess.run([sys.executable, "scripts/convert_lora.py", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=300)

    for names in ("kohya", "diffusers"):
        theirs, ours = tmp_path / f"pan_{names}.safetensors", tmp_path / f"pan_from_{names}.safetensors"
        assert run("--to", names, "--config", str(TINY_CONFIG), str(src), str(theirs)).returncode == 0
        with safe_open(str(theirs), framework="pt") as f:
            keys = list(f.keys())
        assert all(k.startswith("lora_unet_" if names == "kohya" else "unet.") for k in keys)
        assert run("--to", "sgm", "--config", str(TINY_CONFIG), str(theirs), str(ours)).returncode == 0
        back = read_lora(str(ours), net)
        assert (back.rank, back.alpha) == (original.rank, original.alpha)
        assert sorted(back.weights) == sorted(original.weights)
        assert all(torch.equal(back.weights[k], original.weights[k]) for k in original.weights)
    missing = run("--to", "kohya", "--config", str(TINY_CONFIG), str(tmp_path / "none.safetensors"), str(tmp_path / "x.safetensors"))
    assert missing.returncode == 2 and "LoRA file not found" in missing.stderr


def make_adapter(path, targets="temporal", seed=0):
    unet = build_tiny_model(seed=0).model.diffusion_model
    add_lora(unet, "x", rank=4, targets=targets)
    randomize_lora_(unet, "x", seed=seed)
    save_lora(unet, "x", str(path))
    return path


def test_pipeline_strength_zero_is_the_base_model_and_strengths_switch_unmerged(tmp_path):
    from PIL import Image

    from sgm.inference import SamplingOptions, VideoPipeline
    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint

    adapter = make_adapter(tmp_path / "motion.safetensors")
    image = Image.new("RGB", (128, 64), (30, 160, 90))
    opts = SamplingOptions(num_frames=4, num_steps=2, seed=5)
    load = dict(config=str(TINY_CONFIG), ckpt=str(tiny_checkpoint()), device="cpu")
    base = VideoPipeline.load(**load).sample_latents(image, opts)
    pipe = VideoPipeline.load(**load, lora=[f"{adapter}:0"], merge_lora=False)
    assert torch.equal(pipe.sample_latents(image, opts), base)
    pipe.set_lora_strength("motion", 1.0)
    full = pipe.sample_latents(image, opts)
    assert (full - base).abs().max() > 1e-3
    merged = VideoPipeline.load(**load, lora=[str(adapter)]).sample_latents(image, opts)
    assert float((merged - full).norm() / full.norm()) < 1e-4
    assert pipe.info["lora"] == [{"name": "motion", "path": str(adapter), "strength": 1.0, "merged": False}]


def test_sampler_lora_flag_repeatable_and_recorded(tmp_path):
    from PIL import Image

    from scripts.sampling.simple_video_sample import main as sample_main
    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint

    a = make_adapter(tmp_path / "a.safetensors", "temporal", seed=1)
    b = make_adapter(tmp_path / "b.safetensors", "spatial", seed=2)
    Image.new("RGB", (128, 64), (200, 60, 20)).save(tmp_path / "in.png")

    def run(out, *extra):
        return sample_main(["--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()), "--input_path",
                            str(tmp_path / "in.png"), "--output_folder", str(tmp_path / out), "--num_frames", "2",
                            "--num_steps", "1", "--device", "cpu", "--format", "png", *extra])

    assert run("base") == 0 and run("zero", "--lora", f"{a}:0") == 0 and run("two", "--lora", f"{a}:0.5", "--lora", str(b)) == 0
    frames = {k: sorted((tmp_path / k / "in_frames").iterdir()) for k in ("base", "zero", "two")}
    assert [p.read_bytes() for p in frames["zero"]] == [p.read_bytes() for p in frames["base"]]
    assert [p.read_bytes() for p in frames["two"]] != [p.read_bytes() for p in frames["base"]]
    settings = json.loads((tmp_path / "two" / "in.json").read_text())
    assert [(e["name"], e["strength"]) for e in settings["lora"]] == [("a", 0.5), ("b", 1.0)]
    assert run("bad", "--lora", str(tmp_path / "none.safetensors")) == 2


def test_main_trains_only_the_adapter_and_writes_it_alone(tmp_path):
    """main.py with the configs/lora/temporal.yaml overlay on the toy config, from a base checkpoint:
    the base weights do not move, the adapter does, and the adapter file holds nothing else."""
    from safetensors.torch import load_file

    from sgm.training import run
    from tests.inference_helpers import tiny_checkpoint
    from tests.training_helpers import REPO, toy_overrides

    args = toy_overrides(tmp_path, max_steps=3, name="lora", extra=[
        f"model.params.ckpt_path={tiny_checkpoint()}", "lightning.callbacks.save_lora.params.every_n_train_steps=2",
        "model.params.lora_config.rank=4", "model.base_learning_rate=1e-3"])
    args.insert(2, str(REPO / "configs" / "lora" / "temporal.yaml"))
    assert run(args) == 0
    (run_dir,) = [p for p in (tmp_path / "logs").iterdir() if p.name.endswith("_lora")]
    adapter = run_dir / "lora" / "last.safetensors"
    assert (run_dir / "lora" / "step00000002.safetensors").is_file() and adapter.is_file()
    with safe_open(str(adapter), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert meta["rank"] == "4" and "time_stack" in json.loads(meta["targets"])[0]
    assert keys and all(".time_stack." in k and k.endswith((".lora_A.weight", ".lora_B.weight")) for k in keys)
    assert adapter.stat().st_size < tiny_checkpoint().stat().st_size / 10

    base = load_file(str(tiny_checkpoint()))
    trained = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    net = [k for k in base if k.startswith("model.diffusion_model.")]
    assert all(torch.equal(trained[k], base[k]) for k in net)  # frozen
    lora_b = [v for k, v in load_file(str(adapter)).items() if k.endswith("lora_B.weight")]
    assert any(v.abs().max() > 0 for v in lora_b)  # trained (B starts at zero)


def test_demo_lora_flag_applies_the_adapter(tmp_path):
    from sgm.demo.cli import parse_args
    from sgm.demo.launch import prepare
    from tests.helpers import TINY_CONFIG
    from tests.inference_helpers import tiny_checkpoint

    adapter = make_adapter(tmp_path / "pan.safetensors")
    settings = parse_args(["--config", str(TINY_CONFIG), "--ckpt", str(tiny_checkpoint()), "--lora", f"{adapter}:0.5",
                           "--output-folder", str(tmp_path / "out")])
    handlers = prepare(settings)
    assert handlers.slot.pipe.info["lora"][0]["name"] == "pan" and handlers.slot.pipe.info["lora"][0]["strength"] == 0.5
    with pytest.raises(SystemExit):
        parse_args(["--config", str(TINY_CONFIG), "--lora", str(tmp_path / "missing.safetensors")])


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
def test_toy_clips_with_a_direction_all_move_that_way(direction):
    """The motion-LoRA data (sgm.data.synthetic direction=...) and the displacement measure that
    scripts/lora_toy_motion.py uses (sgm.data.synthetic_metrics) agree: every clip moves `direction`, never stands still."""
    import numpy as np

    from scripts.lora_toy_motion import UNIT
    from sgm.data.synthetic import render_toy_video
    from sgm.data.synthetic_metrics import displacement

    for i in range(8):
        frames, meta = render_toy_video(np.random.default_rng([3, i]), 128, 128, fps=6.0, num_frames=4,
                                        direction=direction, speeds=(0.25, 0.5))
        d = np.array(displacement(frames[0], frames[-1]))
        expected = meta["speed_px_per_s"] * 3 / 6.0  # 3 frame intervals at 6 fps
        assert meta["direction"] == direction and meta["motion_score"] > 0
        assert abs(d @ np.array(UNIT[direction]) - expected) <= 1 and abs(d @ np.array(UNIT[direction])[::-1]) <= 1
    with pytest.raises(ValueError, match="direction must be one of"):
        render_toy_video(np.random.default_rng(0), 64, 64, fps=6.0, num_frames=2, direction="sideways")


@pytest.mark.slow
def test_toy_motion_script_trains_measures_and_reports(tmp_path, tiny_toy_run):
    """scripts/lora_toy_motion.py end to end from the command line, on a toy run at the smallest size (2 adapter
    steps): base weights from the run's EMA, the adapter trained, both strengths measured on every held-out
    first frame, and strength 0 reproduces the base model's videos bit for bit."""
    import subprocess
    import sys

    from tests.training_helpers import REPO

    toy_run, _ = tiny_toy_run
    run = subprocess.run([sys.executable, "scripts/lora_toy_motion.py", "--toy_run", str(toy_run), "--workdir", str(tmp_path),
                          "--steps", "2", "--num_images", "2", "--num_steps", "2"],  # threads: the default
                         cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode in (0, 1), run.stderr[-2000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["direction"] == "right" and report["passed"] == (run.returncode == 0)
    assert [len(report[k]["displacements"]) for k in ("strength_0", "strength_1")] == [2, 2]
    assert report["strength_0_equals_base_model"] is True
    assert report["sampling"]["num_frames"] == 4 and report["sampling"]["num_steps_override"] == 2
    assert (tmp_path / "base_ema.safetensors").is_file() and any((tmp_path / "data_right_seed23").glob("*.tar"))
    assert report["adapter"].endswith("last.safetensors") and "strength 0 reproduces" in run.stdout


def test_toy_motion_script_needs_a_toy_run(tmp_path):
    """Without a finished toy curriculum the script says how to make one, and exits 2."""
    import subprocess
    import sys

    from tests.training_helpers import REPO

    run = subprocess.run([sys.executable, "scripts/lora_toy_motion.py", "--toy_run", str(tmp_path / "nothing"),
                          "--workdir", str(tmp_path / "work")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "scripts/toy_curriculum.py --workdir" in run.stderr


def test_toy_motion_script_skip_training_needs_a_trained_adapter(tmp_path):
    """--skip_training in a workdir without an adapter says to train first, and exits 2 before any work."""
    import subprocess
    import sys

    from tests.training_helpers import REPO

    toy = tmp_path / "toy"
    for path in ("stage3/configs/config.yaml", "stage3/checkpoints/last.ckpt"):  # only their presence is checked first
        (toy / path).parent.mkdir(parents=True, exist_ok=True)
        (toy / path).write_text("")
    (toy / "inputs").mkdir()
    run = subprocess.run([sys.executable, "scripts/lora_toy_motion.py", "--toy_run", str(toy), "--workdir",
                          str(tmp_path / "work"), "--skip_training"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2 and "run without --skip_training first" in run.stderr
    assert not (tmp_path / "work").exists()


def test_adapter_file_holds_the_ema_when_the_run_keeps_one(tmp_path):
    """With model.params.use_ema the run samples with the EMA weights (VideoLogger, VideoPipeline), so the
    adapter file holds the adapter's EMA, the same tensors as the checkpoint's model_ema, not the raw ones."""
    from safetensors.torch import load_file

    from sgm.training import run
    from tests.inference_helpers import tiny_checkpoint
    from tests.training_helpers import REPO, toy_overrides

    args = toy_overrides(tmp_path, max_steps=3, name="lora_ema", extra=[
        f"model.params.ckpt_path={tiny_checkpoint()}", "model.params.lora_config.rank=4",
        "model.base_learning_rate=1e-3", "model.params.use_ema=true", "model.params.ema_decay_rate=0.5"])
    args.insert(2, str(REPO / "configs" / "lora" / "temporal.yaml"))
    assert run(args) == 0
    (run_dir,) = [p for p in (tmp_path / "logs").iterdir() if p.name.endswith("_lora_ema")]
    adapter = load_file(str(run_dir / "lora" / "last.safetensors"))
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    from omegaconf import OmegaConf

    name = OmegaConf.load(REPO / "configs" / "lora" / "temporal.yaml").model.params.lora_config.name
    trained_b = [k for k in adapter if k.endswith("lora_B.weight")]
    assert trained_b
    for key in trained_b:  # the file leaves out the adapter's name: <layer>.lora_B.weight, <layer>.lora_B.<name>.weight
        module_key = "diffusion_model." + key.replace(".lora_B.weight", f".lora_B.{name}.weight")
        raw, ema = state["model." + module_key], state["model_ema." + module_key.replace(".", "")]
        assert not torch.equal(raw, ema)  # three steps at decay 0.5: the two differ
        assert torch.equal(adapter[key], ema)
