"""The Gradio web demo: upload an image, preview the crop, generate a video with `sgm.inference`.

Start it with `python scripts/demo/app.py` (see docs/demo.md). The modules here are small and mostly
free of Gradio so they can be tested without a browser:

- `cli`: command-line arguments and their validation (`DemoSettings`).
- `models`: the model choices offered in the page and the slot holding the loaded pipeline.
- `preview`: the crop rectangle drawn over the uploaded image.
- `uploads`: reading an uploaded file as an image, with limits.
- `form`: turning the page's controls into `SamplingOptions`.
- `outputs`: naming and writing the files of one generation.
- `messages`: the text shown in the page for errors.
- `ui`: the Gradio page; `launch`: queueing and serving it.
"""
