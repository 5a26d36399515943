"""Per-dataset extractor settings, tables and runs: several recipes side by side in one report."""

import html
import json
import re

import pyarrow.parquet as pq
from conftest import run_snakemake

DEMO = {"adapter": "demo", "n_train": 40, "n_test": 8, "seed": 3}
CONFIG = {
    "datasets": [
        {
            "name": "recipe_a",
            **DEMO,
            "features": {"n_mfcc": 8, "functionals": ["mean"]},
            "feature_tables": ["mfcc"],
            "runs": [{"feature_sets": ["mfcc"], "models": ["logreg"]}],
        },
        {"name": "recipe_b", **DEMO},
    ],
    "feature_tables": ["prosody"],
    "models": {"majority": {"kind": "majority"}, "logreg": {"kind": "logreg"}},
    "runs": [{"feature_sets": ["prosody"], "models": ["majority", "logreg"]}],
    "evaluation": {"n_bootstrap": 50},
}


def test_each_dataset_its_own_extractor_tables_and_runs(tmp_path):
    run_snakemake(tmp_path, CONFIG)
    a, b = tmp_path / "results/recipe_a", tmp_path / "results/recipe_b"
    assert sorted(p.name for p in (a / "features").glob("*.parquet")) == ["mfcc.parquet"]
    assert sorted(p.name for p in (b / "features").glob("*.parquet")) == ["prosody.parquet"]
    cols = pq.read_schema(a / "features/mfcc.parquet").names
    assert "mfcc07_mean" in cols and "mfcc08_mean" not in cols and "mfcc07_std" not in cols
    assert sorted(p.name for p in (a / "runs").iterdir()) == ["mfcc-logreg"]
    assert sorted(p.name for p in (b / "runs").iterdir()) == ["prosody-logreg", "prosody-majority"]
    assert sorted(p.name for p in (b / "submissions").glob("*.csv")) == [
        "prosody-logreg.csv",
        "prosody-majority.csv",
    ]
    assert json.loads((a / "submissions.json").read_text())["best"] == "mfcc-logreg"
    # Same audio, other extractor parameters: separate cache entries, 48 each.
    keys = [p for p in (tmp_path / "results/cache/descriptors").iterdir() if p.is_dir()]
    assert len(keys) == 2 and all(len(list(k.rglob("*.npy"))) == 48 for k in keys)

    page = (tmp_path / "results/report.html").read_text(encoding="utf-8")
    table = page.split('<table id="overview">')[1].split("</table>")[0]
    rows = [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in table.split("<tr")[2:]
    ]
    assert [r[0] for r in rows] == ["recipe_a", "recipe_b"] and rows[0][1] == "mfcc-logreg"
    uar = {
        ds: json.loads((tmp_path / f"results/{ds}/runs/{run}/metrics.json").read_text())["uar"]
        for ds, run in (("recipe_a", rows[0][1]), ("recipe_b", rows[1][1]))
    }
    assert json.loads((b / "submissions.json").read_text())["best"] == rows[1][1]
    top = max(uar.values())
    gaps = [float(r[6]) for r in rows]
    assert gaps == [round(uar["recipe_a"] - top, 3), round(uar["recipe_b"] - top, 3)] and max(gaps) == 0
    # Provenance names the extractor parameters each dataset changed.
    assert 'dataset recipe_a: descriptors</td><td class="text">functionals=[&#39;mean&#39;], n_mfcc=8' in page
