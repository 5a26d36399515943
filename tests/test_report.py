"""The report as people read it: EmoDB runs in headless Chromium, escaping, Snakemake's --report."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SNAKEMAKE, emodb_subset, run_snakemake
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from serflow.evaluation.comparison import format_p

EVIL = "<script>alert(1)</script>"
MODELS = {
    "svc": {"kind": "svc", "params": {"C": 10.0}, "class_weight": "balanced"},
    "majority": {"kind": "majority"},
    "logreg": {"kind": "logreg", "params": {"C": 0.1}},
    "forest": {"kind": "random_forest", "params": {"n_estimators": 50}},
}
EMODB_RUNS = ["all-svc", "all-majority", "prosody-logreg", "prosody-forest"]


@pytest.fixture(scope="module")
def emodb_run(emodb, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("emodb3")
    corpus = emodb_subset(emodb, workdir / "corpus", speakers=("03", "10", "15"))
    config = {
        "datasets": [{"name": "emodb3", "adapter": "emodb", "root": str(corpus)}],
        "feature_tables": ["prosody", "all"],
        "models": MODELS,
        "runs": [
            {"feature_sets": ["all"], "models": ["svc", "majority"]},
            {"feature_sets": ["prosody"], "models": ["logreg", "forest"]},
        ],
    }
    run_snakemake(workdir, config)
    return workdir


def metrics(workdir, run, dataset="emodb3"):
    return json.loads((workdir / f"results/{dataset}/runs/{run}/metrics.json").read_text())


@pytest.mark.emodb
def test_emodb_three_speakers_loso(emodb_run):
    svc = metrics(emodb_run, "all-svc")
    assert svc["protocol"] == "loso" and svc["n_folds"] == 3 and len(svc["labels"]) == 7
    assert [f["test_speakers"] for f in svc["folds"]] == [["03"], ["10"], ["15"]]
    assert svc["uar"] > 0.4 > metrics(emodb_run, "all-majority")["uar"]
    assert np.isclose(sum(sum(r) for r in svc["confusion_matrix"]), svc["n_clips"])
    assert not (emodb_run / "results/emodb3/submission.csv").exists()  # no test split, no submission
    importance = pd.read_csv(emodb_run / "results/emodb3/runs/prosody-forest/importance.csv")
    assert len(importance) == svc["n_features"] - 756 or len(importance) == 20  # every prosody column
    assert (
        importance["importance"].is_monotonic_decreasing
        and importance["type"].iloc[0] == "mean decrease in impurity"
    )


@pytest.mark.emodb
def test_emodb_report_in_headless_chromium(emodb_run, browser):
    report = emodb_run / "results/report.html"
    size = report.stat().st_size
    assert size < 10 * 2**20
    browser.get(report.as_uri())
    assert browser.title == "serflow report"

    table = browser.find_element(By.ID, "runs-emodb3")
    cells = [r.find_element(By.TAG_NAME, "td") for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    runs = [c.find_element(By.TAG_NAME, "a").text for c in cells]
    m = {r: metrics(emodb_run, r) for r in EMODB_RUNS}
    best = max(EMODB_RUNS, key=lambda r: m[r]["uar"])  # ties: the first in config order
    # one row per run: the best first, then by UAR; the runs the paired test cannot tell from it marked
    assert runs == sorted(EMODB_RUNS, key=lambda r: (r != best, -m[r]["uar"], EMODB_RUNS.index(r)))
    comparison = json.loads((emodb_run / "results/emodb3/comparison.json").read_text())
    assert comparison["best"] == best
    marked = [run for run, cell in zip(runs, cells) if "\u2248" in cell.text]
    assert marked == [r for r in runs[1:] if comparison["runs"][r]["p_value"] >= 0.05]
    for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")[1:]:
        tds = row.find_elements(By.TAG_NAME, "td")
        paired = comparison["runs"][tds[0].find_element(By.TAG_NAME, "a").text]
        assert float(tds[8].get_attribute("data-value")) == pytest.approx(paired["uar_diff"], abs=1e-12)
        assert tds[9].text == format_p(paired["p_value"])

    def uar_column():
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        return [float(r.find_elements(By.TAG_NAME, "td")[7].get_attribute("data-value")) for r in rows]

    header = table.find_element(By.XPATH, ".//th[normalize-space()='UAR']")
    header.click()
    ascending = uar_column()
    assert ascending == sorted(ascending)
    assert [
        r.find_element(By.TAG_NAME, "td").text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")
    ] != runs
    header.click()
    assert uar_column() == sorted(ascending, reverse=True)

    assert browser.find_element(By.CSS_SELECTOR, "tr.best td").text == best
    majority = browser.find_element(By.ID, "majority-emodb3-all-majority").text
    assert "below chance (1/7 = 0.143)" in majority
    details = browser.find_element(By.ID, f"run-emodb3-{best}")
    assert details.get_attribute("open") is None
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open") is not None
    assert "Per speaker" in details.text and "03" in details.text
    assert len(browser.find_elements(By.TAG_NAME, "audio")) == 7  # one example per emotion
    assert len(browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png;base64,']")) >= 10

    from browser import full_page_screenshot

    shot = full_page_screenshot(browser, REPO / "results" / "test-artifacts" / "report_emodb.png")
    assert shot.stat().st_size > 50_000
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


@pytest.mark.emodb
def test_snakemake_report_zip(emodb_run):
    import subprocess

    out = emodb_run / "snakemake_report.zip"
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(emodb_run), "--configfile"]
    cmd += [str(emodb_run / "config.yaml"), "--report", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = zipfile.ZipFile(out).namelist()
    assert any(n.endswith("/report.html") and "/data/raw/" in n for n in names)  # our report, marked
    assert sum(n.endswith("/metrics.json") for n in names) == len(EMODB_RUNS)
    assert any(n.endswith("/rejected.csv") for n in names)


def test_data_from_config_and_files_is_escaped(tmp_path, browser):
    """A label, a speaker and a file name full of HTML show as text, in a real browser too."""
    from serflow.corpus.demo import generate_demo_corpus

    root = generate_demo_corpus(tmp_path / "corpus", n_train=24, n_test=0, seed=1)
    train = pd.read_csv(root / "train.csv")
    (root / "wav" / "it's <b>bold.wav").write_text("not audio")  # rejected: its path is shown
    train.loc[len(train)] = ["bad", "wav/it's <b>bold.wav", "sad", "spk2"]
    train["label"] = train["label"].replace({"angry": EVIL})
    train["speaker"] = train["speaker"].replace({"spk1": "<i>spk1</i> & co"})
    train.to_csv(root / "clips.csv", index=False)
    config = {
        "datasets": [{"name": "evil", "adapter": "csv", "table": str(root / "clips.csv")}],
        "feature_tables": ["prosody"],
        "models": {"logreg": {"kind": "logreg"}},
        "runs": [{"feature_sets": ["prosody"], "models": ["logreg"]}],
        "evaluation": {"n_bootstrap": 50},
    }
    run_snakemake(tmp_path, config)
    report = tmp_path / "results/report.html"
    html = report.read_text()
    assert EVIL not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<i>spk1</i>" not in html and "&lt;i&gt;spk1&lt;/i&gt; &amp; co" in html
    assert "<b>bold" not in html and "it&#39;s &lt;b&gt;bold.wav" in html
    browser.get(report.as_uri())
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 -- the script never ran
    cells = browser.find_elements(By.XPATH, f"//td[normalize-space()='{EVIL}']")
    assert cells, "the label is shown as text"
    assert browser.find_elements(By.XPATH, "//td[normalize-space()='<i>spk1</i> & co']")
    assert not browser.find_elements(By.XPATH, "//td/i[normalize-space()='spk1']")  # no markup injected
    assert not browser.find_elements(By.XPATH, "//td/b[normalize-space()='bold']")
    assert browser.find_elements(By.XPATH, '//td[contains(., "it\'s <b>bold.wav")]')
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
