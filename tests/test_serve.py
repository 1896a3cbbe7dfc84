"""`python -m gliner_jax.serve` end to end: one Ray server (tiny random model, 2 CPUs) per module,
driven over loopback by the reference's own `GLiNERClient` and by raw HTTP. Every load loop is
bounded in count and in time. The last test stops the server with SIGTERM."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

pytest.importorskip("ray.serve", reason="the serve extra (requirements-serve.txt)")

from gliner.serve import GLiNERClient  # noqa: E402
from gliner.serve.client import GLiNERClientError  # noqa: E402

from gliner_jax.model import GLiNER  # noqa: E402
from tests.reference_models import cached_reference_gliner  # noqa: E402
from tests.serve_harness import Server, rss_bytes  # noqa: E402

LABELS = ["person", "company", "city"]
TEXTS = ["John Smith works at Google in Paris.", "Alice was born in Berlin.", "",
         "Zürich and São Paulo 東京 are cities 😀 .", "Bob", "Apple and Microsoft are in New York."]
LONG = " ".join(["Alice Smith works for Google in Berlin and Bob lives in Paris ."] * 4)  # 48 w
WINDOW = ("--window-size", "16", "--window-stride", "5")


@pytest.fixture(scope="module")
def model_dir():
    return cached_reference_gliner(weight_scale=2.0)[1]


@pytest.fixture(scope="module")
def model(model_dir) -> GLiNER:
    return GLiNER.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    srv = Server(model_dir, d / "xla", d / "server.log", "--max-batch-size", "4",
                 "--warmup-max-tokens", "64", "--warmup-max-labels", "4",
                 "--max-body-bytes", "4096", "--request-timeout-s", "240", *WINDOW)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server) -> GLiNERClient:
    return GLiNERClient(base_url=server.base, route_prefix="/gliner", timeout=120)


def key(entities: list[dict]) -> list[tuple]:
    return [(e["start"], e["end"], e["text"], e["label"]) for e in entities]


def assert_same(got: list[dict], want: list[dict]) -> None:
    assert key(got) == key(want)
    for g, w in zip(got, want, strict=True):
        assert g["score"] == pytest.approx(w["score"], rel=1e-5, abs=1e-6)


def test_health_is_ready_after_warmup(server):
    status, body = server.health()
    assert status == 200 and body["status"] == "ready"
    assert body["compiled_shapes"] > 0 and body["late_compiles"] == 0
    assert "warm-up:" in server.log()  # the replica said it had compiled before serving


def test_reference_client_equals_inference(client, model, server):
    want = model.inference(TEXTS, LABELS, threshold=0.3, window_size=16, window_stride=5)
    got = client.predict(TEXTS, LABELS, threshold=0.3)  # concurrent requests, one per text
    assert isinstance(got, list) and len(got) == len(TEXTS)
    for g, w in zip(got, want, strict=True):
        assert_same(g["entities"], w)
    assert sum(map(len, want)) > 3  # the random model finds something at this threshold
    one = client.predict(TEXTS[0], LABELS, threshold=0.3)
    assert_same(one["entities"], want[0])
    # the other switches, a {name: description} label set, the server's default threshold
    labels = {"person": "a human being", "city": "a town"}
    for kw in ({"flat_ner": False}, {"multi_label": True, "flat_ner": False}, {}):
        want = model.predict_entities(TEXTS[5], labels, **{"threshold": 0.5, **kw})
        assert_same(client.predict(TEXTS[5], labels, **kw)["entities"], want)
    assert server.health()[1]["late_compiles"] == 0  # all shapes were compiled at warm-up


def test_mixed_requests_batch_together(client, model):
    """Concurrent requests with different thresholds and switches share batches and still get
    their own answers (per-text threshold / flat_ner / multi_label in inference)."""
    texts = TEXTS * 2
    thresholds = [0.2, 0.4, 0.6, 0.3] * 3
    results, errors = {}, []

    def ask(i):
        try:
            results[i] = client.predict(texts[i], LABELS, threshold=thresholds[i],
                                        flat_ner=i % 2 == 0)
        except GLiNERClientError as e:
            errors.append(e)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    [t.start() for t in threads]
    [t.join(120) for t in threads]
    assert not errors
    for i, text in enumerate(texts):
        want = model.predict_entities(text, LABELS, threshold=thresholds[i],
                                      flat_ner=i % 2 == 0, window_size=16, window_stride=5)
        assert_same(results[i]["entities"], want)


def test_long_text_is_windowed_as_predict(client, model):
    assert len(LONG.split()) > 16
    want = model.predict_entities(LONG, LABELS, threshold=0.4, window_size=16, window_stride=5)
    cut = model.predict_entities(LONG, LABELS, threshold=0.4, truncate=True, window_size=16)
    assert want != cut  # windows matter for this text
    assert_same(client.predict(LONG, LABELS, threshold=0.4)["entities"], want)


BAD = [
    (b"{not json", 400, "malformed JSON"),
    (b'{"text": "\xff", "labels": ["person"]}', 400, "not UTF-8"),
    (b"", 400, "malformed JSON"),
    (b"[1, 2]", 422, "JSON object"),
    ({"labels": LABELS}, 422, "missing field 'text'"),
    ({"text": "x"}, 422, "missing field 'labels'"),
    ({"text": 5, "labels": LABELS}, 422, "'text' must be a string"),
    ({"text": "x", "labels": "person"}, 422, "'labels' must be a list"),
    ({"text": "x", "labels": []}, 422, "no entity labels"),
    ({"text": "x", "labels": ["person", 3]}, 422, "label #1 must be a string"),
    ({"text": "x", "labels": ["person", " "]}, 422, "labels"),
    ({"text": "x", "labels": LABELS, "threshold": 1.5}, 422, "between 0 and 1"),
    ({"text": "x", "labels": LABELS, "threshold": -0.1}, 422, "between 0 and 1"),
    ({"text": "x", "labels": LABELS, "threshold": "high"}, 422, "must be a number"),
    ({"text": "x", "labels": LABELS, "flat_ner": "yes"}, 422, "'flat_ner' must be true"),
    ({"text": "x", "labels": LABELS, "colour": 1}, 422, "unknown field(s) 'colour'"),
    ({"text": "x", "labels": LABELS, "relations": ["works at"]}, 422, "not supported"),
    ({"text": "x" * 5000, "labels": LABELS}, 413, "over the limit of 4096 bytes"),
]


@pytest.mark.parametrize("body,status,words", BAD, ids=[w for _, _, w in BAD])
def test_bad_request_gets_4xx_naming_the_problem(server, body, status, words):
    got_status, got = server.post(body)
    assert got_status == status, got
    assert set(got) == {"error"} and words in got["error"]
    assert "Traceback" not in got["error"] and "\n" not in got["error"]


def test_wrong_method_and_path(server):
    assert server.post(None, method="GET")[0] == 405
    assert server.post({"text": "x"}, "/nothing")[0] == 404
    assert server.post({}, "/health")[0] == 405


def test_demo_server_mode_asks_the_server(server, model):
    """`python -m gliner_jax.demo --server URL` predicts through the server; its errors come
    back as one line."""
    from gliner_jax.demo import server_predictor

    predict = server_predictor(server.url)
    want = model.predict_entities(TEXTS[5], LABELS, threshold=0.3, flat_ner=False)
    assert_same(predict(TEXTS[5], LABELS, 0.3, False, False), want)
    with pytest.raises(ValueError, match="server answered 422: .*between 0 and 1"):
        predict(TEXTS[0], LABELS, 3.0, True, False)


def test_bad_request_flood_leaves_server_correct_with_flat_memory(server, model):
    """1,000 mixed bad requests (bounded: 1,000 at most, 240 s at most): every one gets its 4xx,
    the replica's memory stays flat, and good requests still get the right answer."""
    pid = server.health()[1]["pid"]
    bodies = [b for b, _, _ in BAD]

    def flood(n: int, deadline: float) -> int:
        sent = 0
        for i in range(n):
            if time.monotonic() > deadline:
                break
            status, _ = server.post(bodies[i % len(bodies)], timeout=30)
            assert 400 <= status < 500
            sent += 1
        return sent

    deadline = time.monotonic() + 240
    flood(200, deadline)  # allocator and caches settle
    before = rss_bytes(pid)
    sent = flood(1000, deadline)
    after = rss_bytes(pid)
    assert sent >= 500, f"only {sent} bad requests in the time allowed"
    assert after - before < 16 * 2**20, f"replica RSS grew {(after - before) / 2**20:.1f} MiB"
    assert server.health()[1]["pid"] == pid  # the same replica, never restarted
    want = model.predict_entities(TEXTS[0], LABELS, threshold=0.3)
    status, got = server.post({"text": TEXTS[0], "labels": LABELS, "threshold": 0.3})
    assert status == 200
    assert_same(got["entities"], want)


def test_killed_replica_comes_back_and_only_in_flight_requests_fail(server, model):
    """Four clients loop (bounded: 40 requests each, 300 s); the replica is SIGKILLed mid-load.
    Ray starts a new one (warm-up from the persistent cache); requests sent meanwhile wait for it
    (the server's --request-timeout-s is longer than a restart). A request may fail only if it
    was in flight when the replica died."""
    old_pid = server.health()[1]["pid"]
    want = model.predict_entities(TEXTS[0], LABELS, threshold=0.3)
    log: list[tuple[float, float, bool]] = []  # (sent, answered, ok)
    killed_at: list[float] = []
    stop_at = time.monotonic() + 300

    def loop():
        for _ in range(40):
            if time.monotonic() > stop_at:
                return
            t0 = time.monotonic()
            status, body = server.post({"text": TEXTS[0], "labels": LABELS, "threshold": 0.3},
                                       timeout=300)
            ok = status == 200 and key(body["entities"]) == key(want)
            log.append((t0, time.monotonic(), ok))

    threads = [threading.Thread(target=loop) for _ in range(4)]
    [t.start() for t in threads]
    while len(log) < 8 and time.monotonic() < stop_at:
        time.sleep(0.05)
    killed_at.append(time.monotonic())
    os.kill(old_pid, signal.SIGKILL)
    [t.join(600) for t in threads]
    kill = killed_at[0]
    failed = [(s, e) for s, e, ok in log if not ok]
    assert all(s < kill for s, _ in failed), "a request sent after the kill failed"
    assert len(failed) <= 4  # at most one in flight per client
    after = [ok for s, _, ok in log if s > kill]
    assert after and all(after)
    status, body = server.health()
    assert status == 200 and body["pid"] != old_pid


def test_sigterm_drains_in_flight_requests_then_exits_0(server, model):
    """Runs last: 8 long requests in flight, SIGTERM; all 8 are answered (some after the signal),
    then the process exits 0 (and its Ray processes with it)."""
    text = " ".join([LONG] * 4)
    want = model.predict_entities(text, LABELS, threshold=0.3, window_size=16, window_stride=5)
    results: list = []

    def ask():
        status, body = server.post({"text": text, "labels": LABELS, "threshold": 0.3},
                                   timeout=120)
        results.append((time.monotonic(), status, body))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    [t.start() for t in threads]
    time.sleep(0.2)
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    [t.join(150) for t in threads]
    assert len(results) == 8
    assert any(t > signalled for t, _, _ in results)  # in flight at the signal, still answered
    for _, status, body in results:
        assert status == 200, body
        assert_same(body["entities"], want)
    assert server.proc.wait(120) == 0
    assert "gliner_jax.serve: stopped" in server.log()
