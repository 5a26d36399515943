"""Pseudo-speakers: group the clips of a corpus without speaker ids by who seems to speak.

The groups stand in for speakers in grouped folds, so that the same voice is not on both
sides of a fold. They come from ``voiceprint`` columns, with the directions that separate
the labelled clips' emotions projected out (emotion moves every descriptor somewhat, and
clusters that follow emotion would make folds that are too hard, not honest).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Above this many clips, k-means instead of Ward's agglomeration (whose memory grows as n²).
WARD_MAX_CLIPS = 4000


@dataclass
class SpeakerClustering:
    """Clusters of clips by voice; ``fit_predict`` returns a group index per clip.

    ``n_groups`` is a count or ``"auto"``: the count in ``min_groups..max_groups`` with the
    best silhouette. After fitting: ``n_groups_``, ``silhouette_`` and ``scores_`` (count ->
    silhouette).
    """

    n_groups: int | str = "auto"
    min_groups: int = 4
    max_groups: int = 16
    remove_label_directions: bool = True
    n_components: int = 24
    whiten: bool = True
    random_state: int = 0
    scores_: dict = field(default_factory=dict, init=False)

    def embed(self, x, labels=None) -> np.ndarray:
        """Standardised voice features, emotion directions removed, whitened to ``n_components``."""
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
        if self.remove_label_directions and labels is not None:
            labels = np.asarray(labels, dtype=object)
            known = np.array([lab is not None and lab == lab for lab in labels])
            classes = sorted(set(labels[known].astype(str)))
            if len(classes) > 1:
                # The span of the emotion centroids' differences: projecting it out leaves every
                # emotion with the same mean, so no cluster can be an emotion's.
                lab = labels[known].astype(str)
                centroids = np.array([z[known][lab == c].mean(axis=0) for c in classes])
                basis, _ = np.linalg.qr((centroids - centroids.mean(axis=0)).T)
                basis = basis[:, : len(classes) - 1]
                z = z - (z @ basis) @ basis.T
        n = min(self.n_components, z.shape[1], z.shape[0] - 1)
        return PCA(n_components=n, whiten=self.whiten, random_state=self.random_state).fit_transform(z)

    def _cluster(self, e: np.ndarray, k: int) -> np.ndarray:
        if len(e) <= WARD_MAX_CLIPS:
            from sklearn.cluster import AgglomerativeClustering

            return AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(e)
        from sklearn.cluster import KMeans

        return KMeans(n_clusters=k, n_init=4, random_state=self.random_state).fit_predict(e)

    def fit_predict(self, x, labels=None) -> np.ndarray:
        from sklearn.metrics import silhouette_score

        e = self.embed(x, labels)
        n = len(e)
        if self.n_groups != "auto":
            counts = [min(int(self.n_groups), n)]
        else:
            counts = list(range(max(2, self.min_groups), max(2, min(self.max_groups, n // 2)) + 1))
        best = None
        for k in counts:
            groups = self._cluster(e, k)
            score = float(
                silhouette_score(e, groups, sample_size=min(n, 3000), random_state=self.random_state)
                if 1 < len(set(groups)) < n
                else -1.0
            )
            self.scores_[k] = score
            if best is None or score > best[0]:
                best = (score, k, groups)
        self.silhouette_, self.n_groups_, groups = best
        return _in_order_of_appearance(groups)


def _in_order_of_appearance(groups: np.ndarray) -> np.ndarray:
    """Renumber groups 0, 1, ... in the order their first clip appears (stable names)."""
    order = {}
    for g in groups:
        order.setdefault(g, len(order))
    return np.array([order[g] for g in groups])


def group_names(groups: np.ndarray) -> list[str]:
    width = len(str(max(groups, default=0) + 1))
    return [f"g{g + 1:0{width}d}" for g in groups]


def clustering_quality(groups, speakers) -> dict:
    """Adjusted Rand index and purity of ``groups`` against known ``speakers``, and the counts."""
    from sklearn.metrics import adjusted_rand_score
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(speakers, groups)
    return {
        "adjusted_rand_index": float(adjusted_rand_score(speakers, groups)),
        "purity": float(table.max(axis=0).sum() / table.sum()),
        "n_groups": int(len(set(groups))),
        "n_speakers": int(len(set(speakers))),
    }


def split_separation(groups, is_test, n_permutations: int = 999, random_state: int = 0) -> dict:
    """Do the test clips keep to groups of their own? A permutation test.

    ``share``: the mean, over test clips, of the test clips' share of their group;
    ``expected``: the same with the split labels shuffled (test and training voices alike);
    ``p_value``: how often a shuffle reaches ``share``. A small p-value says the test split's
    voices (or recording) differ from the training clips', the case ``domain_norm`` is for.
    """
    groups = np.unique(np.asarray(groups), return_inverse=True)[1]
    is_test = np.asarray(is_test, dtype=bool)

    def share(mask):
        test_per_group = np.bincount(groups, weights=mask, minlength=groups.max() + 1)
        return float((test_per_group / np.bincount(groups))[groups][mask].mean())

    observed = share(is_test)
    rng = np.random.default_rng(random_state)
    shuffled = np.array([share(rng.permutation(is_test)) for _ in range(n_permutations)])
    p_value = (1 + int((shuffled >= observed).sum())) / (1 + n_permutations)
    return {
        "n_test_clips": int(is_test.sum()),
        "share": round(observed, 4),
        "expected": round(float(shuffled.mean()), 4),
        "p_value": round(p_value, 4),
        "distinct": bool(p_value < 0.01),
    }


def estimate_speakers(manifest_path, shard_paths, settings: dict | None = None, random_state: int = 0):
    """(DataFrame id -> estimated speaker, summary dict) for a manifest's clips.

    ``shard_paths``: the voice extractor's shard tables (``voiceprint``, or ``dvector`` where
    ``settings['voice']`` says so). Clips whose voice features
    failed get no group (they are left out of the feature tables, like any rejected clip).
    Where the manifest knows every clip's speaker, the summary scores the groups against
    them (adjusted Rand index, purity): the groups still replace them. Where it has a test
    split, ``test_split`` says whether its clips keep to groups of their own
    (:func:`split_separation`).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = dict(settings or {})
    parts = [pq.read_table(p) for p in shard_paths]
    shards = pa.concat_tables(parts).to_pandas() if parts else pd.DataFrame(columns=["id", "error"])
    if "error" in shards:
        shards = shards[shards["error"].isna()]
    manifest = pd.read_parquet(manifest_path, columns=["id", "label", "speaker", "split"])
    clips = manifest.merge(shards.drop(columns=["error"], errors="ignore"), on="id", how="inner")
    columns = [c for c in shards.columns if c not in ("id", "error")]
    if len(clips) < 4:
        raise ValueError(f"speakers: cluster needs 4 or more clips with voiceprints, found {len(clips)}")
    clustering = SpeakerClustering(
        n_groups=settings.get("n_groups", "auto"),
        min_groups=settings.get("min_groups", 4),
        max_groups=settings.get("max_groups", 16),
        random_state=random_state,
    )
    labels = clips["label"].astype(object).where(clips["label"].notna(), None).to_numpy()
    groups = clustering.fit_predict(clips[columns].to_numpy(dtype=np.float64), labels)
    summary = {
        "method": f"{settings.get('voice', 'voiceprint')} clusters (emotion directions removed)",
        "n_clips": int(len(clips)),
        "n_groups": int(clustering.n_groups_),
        "silhouette": round(float(clustering.silhouette_), 4),
        "clips_per_group": {"min": int(np.bincount(groups).min()), "max": int(np.bincount(groups).max())},
        "settings": {k: getattr(clustering, k) for k in ("n_groups", "min_groups", "max_groups")},
    }
    is_test = (clips["split"] == "test").to_numpy()
    if 0 < is_test.sum() < len(is_test):
        summary["test_split"] = split_separation(groups, is_test, random_state=random_state)
    known = clips["speaker"]
    if known.notna().all() and known.nunique() > 1:
        summary["against_known_speakers"] = clustering_quality(groups, known.astype(str).to_numpy())
    return pd.DataFrame({"id": clips["id"].to_numpy(), "speaker": group_names(groups)}), summary
