"""`python -m gliner_jax.demo [--model DIR | --server URL]`: a Gradio page where a person types a
text and some labels and sees the entities highlighted inline with their scores. It runs the model
in this process, or asks a running `python -m gliner_jax.serve` (the same JSON protocol)."""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

EXAMPLES = [
    ["Marie Curie received the Nobel Prize in Physics in 1903 together with Pierre Curie.",
     "person, award, date", 0.4, False, False],
    ["Apple opened its first store in Tokyo in 2003, two years after launching the iPod.",
     "organization, city, date, product", 0.4, False, False],
    ["The Amazon river flows through Brazil and Peru before reaching the Atlantic Ocean.",
     "river, country, ocean", 0.4, False, False],
]

Predict = Callable[[str, list[str], float, bool, bool], list[dict]]


def local_predictor(model_dir: str) -> Predict:
    from gliner_jax.model import GLiNER

    model = GLiNER.from_pretrained(model_dir, local_files_only=True)

    def predict(text, labels, threshold, flat_ner, multi_label):
        return model.predict_entities(text, labels, threshold=threshold, flat_ner=flat_ner,
                                      multi_label=multi_label)
    return predict


def server_predictor(url: str, timeout: float = 60.0) -> Predict:
    """POSTs to a gliner_jax.serve (or gliner.serve) endpoint, e.g. http://127.0.0.1:8000/gliner."""

    def predict(text, labels, threshold, flat_ner, multi_label):
        body = json.dumps({"text": text, "labels": labels, "threshold": threshold,
                           "flat_ner": flat_ner, "multi_label": multi_label}).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["entities"]
        except urllib.error.HTTPError as e:
            raise ValueError(f"server answered {e.code}: {_error_text(e)}") from None
        except urllib.error.URLError as e:
            raise ValueError(f"cannot reach the server at {url}: {e.reason}") from None
    return predict


def _error_text(e: urllib.error.HTTPError) -> str:
    raw = e.read().decode(errors="replace")
    try:
        return json.loads(raw)["error"]
    except (ValueError, KeyError, TypeError):
        return raw[:200]


def highlight(text: str, entities: list[dict]) -> list[tuple[str, str | None]]:
    """Gradio HighlightedText pieces: plain text and "label score" spans. Nested / overlapping
    entities: the first one (by start, longest first) is drawn inline; the table lists all."""
    pieces, pos = [], 0
    for e in sorted(entities, key=lambda e: (e["start"], -e["end"])):
        if e["start"] < pos:
            continue
        if e["start"] > pos:
            pieces.append((text[pos:e["start"]], None))
        pieces.append((text[e["start"]:e["end"]], f"{e['label']} {e['score']:.2f}"))
        pos = e["end"]
    if pos < len(text):
        pieces.append((text[pos:], None))
    return pieces


def entity_table(entities: list[dict]) -> str:
    """Every entity (nested and multi-label ones too) as an HTML table."""
    head = "".join(f"<th>{h}</th>" for h in ("text", "label", "score", "start", "end"))
    rows = "".join(
        "<tr class='entity'>" + "".join(
            f"<td>{html.escape(str(v))}</td>" for v in
            (e["text"], e["label"], f"{e['score']:.4f}", e["start"], e["end"])) + "</tr>"
        for e in entities)
    return (f"<p><b>All entities</b> ({len(entities)})</p>"
            f"<table class='entities'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")


def parse_labels(labels: str) -> list[str]:
    return [x.strip() for x in labels.replace("\n", ",").split(",") if x.strip()]


def build_app(predict: Predict, source: str):
    import gradio as gr

    def run(text, labels, threshold, nested, multi_label):
        names = parse_labels(labels or "")
        if not names:
            raise gr.Error("Give at least one label, e.g. person, organization, location")
        if not (text or "").strip():
            return [], []
        try:
            ents = predict(text, names, float(threshold), not nested, bool(multi_label))
        except ValueError as e:
            raise gr.Error(str(e)) from None
        return highlight(text, ents), entity_table(ents)

    with gr.Blocks(title="gliner_jax") as app:
        gr.Markdown("## GLiNER in JAX: zero-shot named entities\n"
                    f"Name the entity types you want, in plain words. Model: `{source}`")
        with gr.Row():
            with gr.Column():
                text = gr.Textbox(label="Text", lines=6, elem_id="text")
                labels = gr.Textbox(label="Labels (comma-separated)", elem_id="labels",
                                    value="person, organization, location")
                threshold = gr.Slider(0.0, 1.0, value=0.5, step=0.01, label="Threshold",
                                      elem_id="threshold")
                with gr.Row():
                    nested = gr.Checkbox(label="Nested entities", value=False, elem_id="nested")
                    multi = gr.Checkbox(label="Multi-label", value=False, elem_id="multi")
                submit = gr.Button("Submit", variant="primary", elem_id="submit")
            with gr.Column():
                shown = gr.HighlightedText(label="Entities", elem_id="entities",
                                           combine_adjacent=False, show_legend=False)
                table = gr.HTML(entity_table([]), elem_id="table")
        inputs = [text, labels, threshold, nested, multi]
        submit.click(run, inputs, [shown, table])
        gr.Examples(EXAMPLES, inputs)
    return app


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m gliner_jax.demo", description=__doc__)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="model directory to run in this process (default: "
                                     "$GLINER_JAX_MODEL, else the shipped model)")
    src.add_argument("--server", help="URL of a running server, e.g. "
                                      "http://127.0.0.1:8000/gliner")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    a = p.parse_args(argv)
    if a.server:
        predict, source = server_predictor(a.server), a.server
    else:
        from gliner_jax.predict import ModelError, _model_source

        try:
            model_dir = _model_source(argparse.Namespace(
                model=a.model or os.environ.get("GLINER_JAX_MODEL")))
        except ModelError as e:
            p.error(str(e))
        if not os.path.isdir(model_dir):
            p.error(f"--model {model_dir}: not a directory")
        predict, source = local_predictor(model_dir), model_dir
    build_app(predict, source).launch(server_name=a.host, server_port=a.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
