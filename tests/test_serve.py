"""``serflow serve`` as a real server process: the JSON endpoint, bad uploads, and the page in Chromium."""

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from conftest import REPO, tone, write_wav
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SERFLOW = str(Path(sys.executable).with_name("serflow"))
ARTIFACTS = REPO / "results" / "test-artifacts"
pytestmark = pytest.mark.emodb


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``serflow serve`` on a free localhost port; ``stop`` ends exactly this process."""

    def __init__(self, run: Path, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [SERFLOW, "serve", str(run), "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serflow serve exited: {self.proc.stdout.read()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return
            except requests.ConnectionError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("serflow serve did not answer within 90 s")

    def post(self, files):
        return requests.post(f"{self.url}/predict", files=files, timeout=60)

    def stop(self) -> str:
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=30)
        return out


@pytest.fixture(scope="module")
def server(emodb_models):
    srv = Server(emodb_models / "all-logreg", "--max-upload-mb", "1")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def clips(emodb, tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload")
    good = sorted(emodb.glob("10*.wav"))[:5]
    return {
        "good": good[0],
        "enrol": good[1:5],
        "text": _write(folder / "notes.wav", b"just text\n"),
        "empty": _write(folder / "empty.wav", b""),
        "truncated": _write(folder / "truncated.wav", good[0].read_bytes()[:3000]),
        "short": write_wav(folder / "short.wav", tone(seconds=0.005)),
        "large": write_wav(folder / "large.wav", tone(seconds=40.0)),  # 1.3 MB > 1 MB
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def upload(path: Path, field="file"):
    return (field, (path.name, path.read_bytes(), "audio/wav"))


def check_good(server, clips):
    r = server.post([upload(clips["good"])])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["label"] in body["labels"] and abs(sum(body["probabilities"].values()) - 1) < 1e-9
    assert body["label"] == max(body["probabilities"], key=body["probabilities"].get)
    assert body["logmel_png"].startswith("data:image/png;base64,") and len(body["waveform"]) == 400
    return body


def test_json_endpoint_bad_uploads_and_concurrency(server, clips):
    first = check_good(server, clips)
    bad = {
        "text": (server.post([upload(clips["text"])]), 422, "upload: cannot decode audio"),
        "empty": (server.post([upload(clips["empty"])]), 400, "upload is empty"),
        "corrupt": (server.post([upload(clips["truncated"])]), 422, "upload: truncated WAV"),
        "short": (server.post([upload(clips["short"])]), 422, "upload: shorter than one analysis frame"),
        "large": (server.post([upload(clips["large"])]), 413, "over the 1 MB limit"),
        "two": (server.post([upload(clips["good"]), upload(clips["good"])]), 400, "2 files in 'file'"),
        "none": (server.post([upload(clips["good"], field="other")]), 400, "no file"),
        "form": (requests.post(f"{server.url}/predict", data=b"x", timeout=10), 400, "multipart"),
    }
    for name, (r, status, message) in bad.items():
        assert r.status_code == status, (name, r.text)
        assert message in r.json()["detail"], (name, r.json())
        assert check_good(server, clips) == first  # still serving, same answer
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: server.post([upload(clips["good"])]), range(40)))
    assert [a.status_code for a in answers] == [200] * 40
    assert all(a.json()["probabilities"] == first["probabilities"] for a in answers)


def test_page_upload_and_fake_microphone(server, clips, browser, tmp_path):
    browser.get(server.url)
    assert "Speech emotion" in browser.find_element(By.TAG_NAME, "h1").text
    assert not browser.find_elements(By.ID, "enrolment")  # not a speaker-normalised model
    browser.find_element(By.ID, "file").send_keys(str(clips["good"]))
    browser.find_element(By.ID, "upload").click()
    label = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "label").text)
    expected = check_good(server, clips)["label"]
    assert label == expected
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart .bar")
    assert [b.get_attribute("data-label") for b in bars] == check_good(server, clips)["labels"]
    assert browser.find_element(By.CSS_SELECTOR, "#chart .bar.top").get_attribute("data-label") == expected
    assert browser.find_element(By.ID, "logmel").get_attribute("src").startswith("data:image/png")
    from browser import full_page_screenshot

    assert full_page_screenshot(browser, ARTIFACTS / "serve_upload.png").stat().st_size > 20_000
    # A bad upload shows its message on the page.
    browser.find_element(By.ID, "file").send_keys(str(clips["text"]))
    browser.find_element(By.ID, "upload").click()
    error = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "error").text)
    assert "cannot decode audio" in error
    assert not browser.find_element(By.ID, "result").is_displayed()  # the previous answer is gone

    # Chromium's fake microphone plays an EmoDB clip into the page's recorder.
    from browser import start_driver

    mic = start_driver(
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={clips['good']}",
    )
    try:
        mic.get(server.url)
        mic.find_element(By.ID, "record").click()
        WebDriverWait(mic, 20).until(lambda d: d.find_element(By.ID, "record").text == "Stop")
        time.sleep(2.5)
        mic.find_element(By.ID, "record").click()
        label = WebDriverWait(mic, 60).until(lambda d: d.find_element(By.ID, "label").text)
        assert label in check_good(server, clips)["labels"]
        assert float(mic.find_element(By.ID, "duration").text) > 1.0
        assert mic.find_element(By.ID, "error").text == ""
        full_page_screenshot(mic, ARTIFACTS / "serve_microphone.png")
    finally:
        mic.quit()


def test_speaker_normalised_model_enrolment(emodb_models, clips, browser):
    srv = Server(emodb_models / "all-logreg_spk")
    try:
        body = srv.post([upload(clips["good"])]).json()
        assert (
            body["normalisation"].startswith("global scaling")
            and "enrol 4 more clip(s)" in body["normalisation"]
        )
        enrolled = srv.post([upload(clips["good"]), *(upload(p, "enrol") for p in clips["enrol"])]).json()
        assert enrolled["normalisation"] == "per speaker (5 clips)"
        bad = srv.post([upload(clips["good"]), upload(clips["text"], "enrol")])
        assert bad.status_code == 422 and "enrolment clip 1: cannot decode audio" in bad.json()["detail"]

        browser.get(srv.url)
        assert "normalises each speaker" in browser.find_element(By.ID, "enrolment").text
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert headings == ["1. Enrol your voice", "2. Predict a clip"]  # two file pickers, told apart
        browser.find_element(By.ID, "enrol-file").send_keys("\n".join(str(p) for p in clips["enrol"]))
        assert browser.find_element(By.ID, "enrol-count").text == "4 enrolment clips"
        browser.find_element(By.ID, "file").send_keys(str(clips["good"]))
        browser.find_element(By.ID, "upload").click()
        WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "label").text)
        note = browser.find_element(By.ID, "normalisation").text
        assert note == "Normalisation: per speaker (5 clips)"
        assert browser.find_element(By.ID, "label").text == enrolled["label"]
    finally:
        log = srv.stop()
    assert srv.proc.returncode is not None and "Uvicorn running" in log
