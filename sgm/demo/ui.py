"""The Gradio page: controls on the left; Generate, the video, the message and downloads on the
right. Behaviour lives in `DemoHandlers`; this module only lays out components and wires their events."""
import inspect
from typing import Optional

from .form import EXTRA_FORMATS, FormValues, random_seed
from .handlers import DemoHandlers
from .messages import Message

# The sampling controls, in FormValues' order: (name, label, minimum, maximum, step, info).
SLIDERS = (
    ("num_frames", "Frames", 1, 64, 1, "video length T"),
    ("num_steps", "Steps", 1, 100, 1, "sampler steps (more: slower, finer)"),
    ("fps_id", "fps_id", 0, 29, 1, "frame-rate conditioning; the video plays at fps_id + 1 fps"),
    ("motion_bucket_id", "Motion bucket", 0, 255, 1, "more motion when higher"),
    ("cond_aug", "cond_aug", 0.0, 1.0, 0.01, "noise on the input frame (more freedom from it when higher)"),
    ("min_cfg", "Min CFG", 0.0, 10.0, 0.1, "lowest per-frame guidance scale (first frame for SVD)"),
    ("max_cfg", "Max CFG", 0.0, 10.0, 0.1, "highest per-frame guidance scale (last frame for SVD)"),
    ("decoding_t", "decoding_t", 1, 64, 1, "frames decoded at once (lower: less memory)"),
    ("total_frames", "Total frames", 0, 256, 1, "0: one clip; more than Frames: clips chained into one video"),
)
SIZE_SLIDERS = (("width", "Width", 32, 2048, 32), ("height", "Height", 32, 2048, 32))
# The names `/generate` takes in Gradio's API, in the order of its inputs (on_generate's parameters).
GENERATE_PARAMETERS = ("image", "formats", "crop_x", "crop_y", "width", "height", "num_frames", "num_steps", "fps_id",
                       "motion_bucket_id", "cond_aug", "min_cfg", "max_cfg", "decoding_t", "total_frames", "seed")
VIDEO_HEIGHT = 400  # pixels: the Generate button, the video and the message fit in a 1280x800 window
CSS = "#message p { margin: 0.2em 0; } #model-status p { margin: 0.2em 0; }"


def _defaults_values(opts) -> list:
    """Slider values for SamplingOptions `opts`, in SLIDERS + SIZE_SLIDERS order."""
    return [_value(opts, name) for name, *_ in SLIDERS] + [getattr(opts, name) for name, *_ in SIZE_SLIDERS]


def _value(opts, name: str):
    """The slider value of option `name`: total_frames None (one clip) shows as 0."""
    value = getattr(opts, name)
    return 0 if value is None and name == "total_frames" else value


def build_demo(handlers: DemoHandlers, max_queue: int = 16):
    """The gr.Blocks page for `handlers`, queued (not launched): generations and model loads share
    one queue that runs `handlers.concurrency` at a time and holds at most `max_queue` waiting.

    The Generate button sits above the video in the right column, so both are in view together
    (tested at 1280x800). Event functions have named parameters: they are the names `/generate`,
    `/preview` and `/load_model` take in Gradio's API (see docs/demo.md).
    """
    import gradio as gr

    defaults = handlers.defaults()

    def show(message: Optional[Message]) -> str:
        """The Markdown for `message` (a pop-up too when it is an error)."""
        if message is None:
            return ""
        if message.is_error:
            gr.Warning(message.plain())
        return message.markdown()

    with gr.Blocks(title="Stable Video Diffusion demo", analytics_enabled=False) as demo:
        gr.Markdown("## Stable Video Diffusion: image to video")
        status = gr.Markdown(handlers.slot.status().markdown(), elem_id="model-status")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Input image (jpg, png or webp)", file_types=["image"], type="filepath",
                                 elem_id="input-file")
                with gr.Row():
                    preview = gr.Image(label="Crop that will be used", interactive=False, type="pil",
                                       elem_id="crop-preview", format="png", height=200)
                    model_input = gr.Image(label="First frame (model input)", interactive=False, type="pil",
                                           elem_id="model-input", format="png", height=200)
                with gr.Row():
                    crop_x = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Crop offset x", info="0 left, 1 right",
                                       elem_id="crop-x")
                    crop_y = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Crop offset y", info="0 top, 1 bottom",
                                       elem_id="crop-y")
                with gr.Row():
                    size = [gr.Slider(lo, hi, value=getattr(defaults, name), step=step, label=label, elem_id=name)
                            for name, label, lo, hi, step in SIZE_SLIDERS]
                with gr.Accordion("Sampling", open=True):
                    sliders = []
                    for pair in range(0, len(SLIDERS), 2):  # two controls a row
                        with gr.Row():
                            sliders += [gr.Slider(lo, hi, value=_value(defaults, name), step=step, label=label,
                                                  info=info, elem_id=name)
                                        for name, label, lo, hi, step, info in SLIDERS[pair:pair + 2]]
                    with gr.Row():
                        seed = gr.Number(value=defaults.seed, precision=0, minimum=0, label="Seed", elem_id="seed",
                                         scale=3)
                        dice = gr.Button("Random seed", elem_id="random-seed", scale=1)
                    formats = gr.CheckboxGroup(list(EXTRA_FORMATS), value=["gif", "webp"],
                                               label="Also write (mp4 is always written)", elem_id="formats")
                with gr.Accordion("Model", open=False):
                    model_menu = gr.Dropdown(choices=handlers.menu(), value=handlers.selected_key(), label="Model",
                                             elem_id="model-menu")
                    load_button = gr.Button("Load model", elem_id="load-model")
            with gr.Column(scale=1):
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                video = gr.Video(label="Video", interactive=False, autoplay=True, loop=True, elem_id="output-video",
                                 height=VIDEO_HEIGHT)
                message = gr.Markdown("", elem_id="message")
                files = gr.File(label="Downloads (video files and settings JSON)", file_count="multiple",
                                interactive=False, elem_id="output-files")

        # -- events -----------------------------------------------------------------------------
        def on_preview(image, width, height, crop_x, crop_y):
            framed, first, text = handlers.preview(image, width, height, crop_x, crop_y)
            return framed, first, show(text)

        preview_inputs = [upload, size[0], size[1], crop_x, crop_y]
        for i, component in enumerate((upload, *size, crop_x, crop_y)):
            # One documented API endpoint ("/preview"); the slider triggers repeat it.
            component.change(on_preview, preview_inputs, [preview, model_input, message], trigger_mode="always_last",
                             concurrency_limit=4, concurrency_id="preview", show_progress="hidden",
                             api_name="preview" if i == 0 else None, api_visibility="public" if i == 0 else "private")

        def on_generate(image, formats, crop_x, crop_y, width, height, num_frames, num_steps, fps_id, motion_bucket_id,
                        cond_aug, min_cfg, max_cfg, decoding_t, total_frames, seed, progress=gr.Progress()):
            form = FormValues(num_frames=num_frames, num_steps=num_steps, fps_id=fps_id,
                              motion_bucket_id=motion_bucket_id, cond_aug=cond_aug, min_cfg=min_cfg, max_cfg=max_cfg,
                              seed=seed, decoding_t=decoding_t, width=width, height=height, crop_x=crop_x,
                              crop_y=crop_y, total_frames=total_frames)

            def report(step: int, total: int, stage: str) -> None:
                progress((step, total), desc=stage.capitalize(), unit="steps" if stage == "sampling" else "chunks")

            mp4, downloads, text = handlers.generate(image, form, formats, progress=report)
            return mp4, downloads, show(text)

        generate_inputs = [upload, formats, crop_x, crop_y, *size, *sliders, seed]
        # The API names are on_generate's parameters; they must match the inputs, in order.
        assert tuple(inspect.signature(on_generate).parameters)[:-1] == GENERATE_PARAMETERS == (
            "image", "formats", "crop_x", "crop_y", *(n for n, *_ in SIZE_SLIDERS), *(n for n, *_ in SLIDERS), "seed")
        generate.click(on_generate, generate_inputs, [video, files, message],
                       concurrency_id="model", concurrency_limit=handlers.concurrency, api_name="generate")

        def on_load(model):
            text, opts = handlers.load_model(model)
            # The menu shows the model actually loaded (labels also refresh "(missing)" marks).
            menu = gr.update(choices=handlers.menu(), value=handlers.selected_key())
            return [show(text), menu] + _defaults_values(opts)

        load_button.click(on_load, [model_menu], [status, model_menu, *sliders, *size],
                          concurrency_id="model", concurrency_limit=handlers.concurrency, api_name="load_model")
        dice.click(random_seed, None, seed, queue=False, api_visibility="private")
        demo.load(lambda: handlers.slot.status().markdown(), None, status, queue=False, api_visibility="private")
    demo.queue(default_concurrency_limit=handlers.concurrency, max_size=max_queue)
    return demo
