"""``serflow serve``: a page that records or uploads speech, and ``POST /predict`` returning JSON.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart). Uploads are read into
memory (never written under a name the client chose); bad input gets a 4xx with a
specific message and the server keeps serving.
"""

from __future__ import annotations

import base64
import io
from html import escape

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse

from serflow.apps.predict import TrainedModel
from serflow.corpus.audio import AudioError, decode_clip
from serflow.models.normalisation import MIN_SPEAKER_CLIPS

WAVEFORM_POINTS = 400


class UploadError(Exception):
    """A request that cannot be answered: HTTP status and message."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message
        super().__init__(message)


class Predictor:
    """One loaded model answering uploads: features, prediction and the pictures of the clip."""

    def __init__(self, model: TrainedModel, max_upload_mb: float = 20.0):
        self.model = model
        self.max_bytes = int(max_upload_mb * 2**20)

    def check_size(self, n_bytes: int, what: str = "upload") -> None:
        if n_bytes > self.max_bytes:
            limit = f"{self.max_bytes / 2**20:g} MB"
            raise UploadError(413, f"{what} is {n_bytes / 2**20:.1f} MB, over the {limit} limit")
        if n_bytes == 0:
            raise UploadError(400, f"{what} is empty (0 bytes)")

    def _decode(self, data: bytes, what: str) -> tuple[np.ndarray, np.ndarray]:
        """(the clip at the model's rate, its feature row); UploadError when unusable."""
        self.check_size(len(data), what)
        reader = self.model.reader
        try:
            y = decode_clip(data, what, reader.sample_rate, reader.min_samples)
            return y, reader.row(data, what, y=y)
        except AudioError as err:
            raise UploadError(422, f"{what}: {err.reason}") from None

    def predict(self, data: bytes, enrol: list[bytes] = ()) -> dict:
        """The JSON answer for one clip (and a speaker-normalised model's enrolment clips)."""
        rows = [self._decode(d, f"enrolment clip {i + 1}")[1] for i, d in enumerate(enrol)]
        y, row = self._decode(data, "upload")
        x = np.vstack([*rows, row])
        x, notes, _ = self.model.normalisation.transform(x, ["you"] * len(x), "global", MIN_SPEAKER_CLIPS)
        if self.model.normalisation.speaker and len(x) < MIN_SPEAKER_CLIPS:
            more = MIN_SPEAKER_CLIPS - len(x)
            notes[-1] = (
                f"global scaling (training statistics): enrol {more} more clip(s) to normalise per speaker"
            )
        proba = self.model.predict_proba(x[-1:])[0]
        labels = self.model.labels
        return {
            "label": labels[int(np.argmax(proba))],
            "labels": labels,
            "probabilities": {lab: float(p) for lab, p in zip(labels, proba)},
            "normalisation": notes[-1] or "none",
            "duration_s": round(len(y) / self.model.reader.sample_rate, 3),
            "waveform": waveform_envelope(y),
            "logmel_png": logmel_png(y, self.model.reader.sample_rate),
        }


def waveform_envelope(y: np.ndarray, points: int = WAVEFORM_POINTS) -> list[list[float]]:
    """[min, max] of ``points`` equal slices of the clip (what a waveform plot draws)."""
    edges = np.linspace(0, len(y), min(points, len(y)) + 1).astype(int)
    return [[round(float(y[a:b].min()), 4), round(float(y[a:b].max()), 4)] for a, b in zip(edges, edges[1:])]


def logmel_png(y: np.ndarray, sr: int, n_mels: int = 64, hop_length_s: float = 0.01) -> str:
    """A log-mel spectrogram (dB) as a PNG data URL, low frequencies at the bottom."""
    import librosa
    from matplotlib.image import imsave

    hop = max(1, int(sr * hop_length_s))
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=4 * hop, hop_length=hop, n_mels=n_mels)
    db = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    buf = io.BytesIO()
    imsave(buf, db, cmap="magma", origin="lower", format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def create_app(model: TrainedModel, max_upload_mb: float = 20.0):
    """The FastAPI application serving ``model``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    predictor = Predictor(model, max_upload_mb)
    env = Environment(loader=PackageLoader("serflow", "templates"), autoescape=select_autoescape())
    page = env.get_template("serve.html.j2").render(
        model=model.name,
        labels=model.labels,
        speaker_norm=model.normalisation.speaker,
        enrol_clips=MIN_SPEAKER_CLIPS - 1,
        max_upload_mb=max_upload_mb,
        card=model.card.exists(),
    )
    app = FastAPI(title="serflow", docs_url=None, redoc_url=None)

    @app.exception_handler(UploadError)
    async def upload_error(request, err: UploadError):
        return JSONResponse({"detail": err.message}, status_code=err.status)

    @app.get("/", response_class=HTMLResponse)
    def index():
        return page

    @app.get("/health")
    def health():
        return {"status": "ok", "model": model.name, "labels": model.labels}

    @app.get("/model_card")
    def card():
        if not model.card.exists():
            raise UploadError(404, "this model has no model_card.md")
        return HTMLResponse(f"<pre>{escape(model.card.read_text(encoding='utf-8'))}</pre>")

    @app.post("/predict")
    async def predict(request: Request):
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MIN_SPEAKER_CLIPS * predictor.max_bytes + 2**20:
            raise UploadError(413, f"the request is {int(length) / 2**20:.1f} MB, over the upload limit")
        try:
            form = await request.form(max_files=MIN_SPEAKER_CLIPS + 16, max_fields=16)
        except Exception as err:
            raise UploadError(400, f"not a multipart upload with a 'file' field ({err})") from None
        try:
            files = [f for f in form.getlist("file") if _is_file(f)]
            if not files:
                raise UploadError(400, "no file: send one audio file in the multipart field 'file'")
            if len(files) > 1:
                raise UploadError(400, f"{len(files)} files in 'file': send one clip per request")
            data = await files[0].read(predictor.max_bytes + 1)
            enrol = [await f.read(predictor.max_bytes + 1) for f in form.getlist("enrol") if _is_file(f)]
            return await run_in_threadpool(predictor.predict, data, enrol)
        finally:
            await form.close()

    return app


def _is_file(value) -> bool:
    from starlette.datastructures import UploadFile

    return isinstance(value, UploadFile)


def serve(model: TrainedModel, host: str = "127.0.0.1", port: int = 8000, max_upload_mb=20.0, threads=1):
    """Run the application with uvicorn until interrupted."""
    import uvicorn

    from serflow.runtime import limit_threads

    limiter = limit_threads(threads)  # noqa: F841 (kept while serving)
    uvicorn.run(create_app(model, max_upload_mb), host=host, port=port, log_level="info")
