"""Training data: webdataset shards of videos (mp4 + json) and images (jpg + json/txt), and toy shards.

Modules (import them directly; nothing heavy is imported here):
- `sgm.data.video`: `VideoDataset` and `VideoDataModule`, the video batches SVD trains on.
- `sgm.data.image`: `ImageDataset` and `ImageDataModule`, image batches for stage 1 (text-to-image).
- `sgm.data.synthetic`: moving-shape toy shards (`write_toy_video_shards`, `write_toy_image_shards`).
- `sgm.data.motion`: the motion score -> `motion_bucket_id` mapping.
The shard format and the batch keys are described in docs/data.md.
"""
