"""The workflow's augment_listing job: a manifest's copies, as a table and extraction shards."""

from __future__ import annotations

import logging


def write_listing(manifest_path, spec: dict, copies_path, shard_paths, digest_paths, log_path=None) -> None:
    """Write the copies of the augmentation ``spec`` (``Augmentation.describe()``) of a
    manifest's clips (Parquet, ``COPY_COLUMNS``) and their shard lists (as the manifest's)."""
    import pandas as pd

    from serflow.augmentation.copies import Augmentation, list_copies
    from serflow.corpus.manifest import write_shards

    log = logging.getLogger("serflow.augment")
    if log_path:
        log.addHandler(logging.FileHandler(log_path, mode="w"))
        log.setLevel(logging.INFO)
    augmentation = Augmentation.from_config(spec["name"], spec)
    copies = list_copies(pd.read_parquet(manifest_path), augmentation)
    copies.to_parquet(copies_path, index=False)
    write_shards(copies, shard_paths, digest_paths)
    per_label = copies["label"].value_counts().sort_index().to_dict()
    log.info("%d copies of %d clips: %s", len(copies), copies["source"].nunique(), per_label)
