"""`python -m gliner_jax.predict`: named entities of texts, one JSON object per text.

    python -m gliner_jax.predict --labels person,organization,location "Text one." "Text two."
    python -m gliner_jax.predict --labels @labels.txt --input texts.txt --output out.jsonl
    python -m gliner_jax.predict --labels person --input book.txt --document --format text
    python -m gliner_jax.predict -m RELEX_MODEL --labels person,company --relations "works at" ...

Inputs: texts as arguments, standard input (one text per line), or `--input FILE` (.txt: one
text per line, or the whole file with `--document`; .jsonl: {"id", "text", "labels"} per line).
Texts longer than the model's max_len words are predicted in overlapping windows and stitched.
Inputs are checked before the model is loaded; every failure is one line on stderr and a
non-zero exit code: 2 for bad usage or input, 3 for a model that cannot be loaded, 1 otherwise.
Compiled programs are kept in a persistent cache, so the second run starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from gliner_jax.hosts import (
    Hosts,
    JoinError,
    PeerLost,
    chunk_bounds,
    join,
    local_mesh,
    protect_stdout,
)
from gliner_jax.predict_io import (
    ErrorPolicy,
    InputError,
    Output,
    Record,
    parse_labels,
    parse_units,
    read_units,
    result,
    to_json_line,
    to_text,
    use_color,
)
from gliner_jax.shipped import NoShippedModel, checkpoints_dir, default_model

EXIT_USAGE, EXIT_MODEL, EXIT_FAILURE = 2, 3, 1
CHECKPOINTS = checkpoints_dir()  # the checkout's checkpoints/, or the installed wheel's copy
MAX_CHUNK = 1024  # texts predicted together (sorted by length) before their results are written


class UsageError(ValueError):
    pass


class ModelError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _fraction(x: str) -> float:
    try:
        v = float(x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {x!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {x}")
    return v


def _positive(x: str) -> int:
    try:
        v = int(x)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {x!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {x}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="python -m gliner_jax.predict",
                 description="Find named entities of any type (GLiNER) in texts; prints one JSON "
                             "object per text: {\"id\", \"entities\": [{\"start\", \"end\", "
                             "\"text\", \"label\", \"score\"}]}.")
    ap.add_argument("texts", nargs="*", help="texts (else --input, else standard input)")
    io = ap.add_argument_group("input and output")
    io.add_argument("-i", "--input", metavar="FILE",
                    help=".txt (one text per line) or .jsonl ({\"id\", \"text\", \"labels\"} per "
                         "line); - reads standard input")
    io.add_argument("--input-format", choices=["txt", "jsonl"],
                    help="format of --input (default: from its suffix; standard input: txt)")
    io.add_argument("--document", action="store_true",
                    help="read a .txt input (or standard input) as one document")
    io.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    io.add_argument("-f", "--format", choices=["jsonl", "json", "text"], default="jsonl",
                    help="jsonl (default): a JSON object per text; json: one JSON array; text: "
                         "the input with entities marked inline")
    io.add_argument("--skip-errors", action="store_true",
                    help="skip bad input lines (reported and counted) instead of stopping")
    io.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    io.add_argument("-v", "--verbose", action="store_true",
                    help="let libraries (JAX, transformers) print their notices and warnings")
    m = ap.add_argument_group("model and decoding")
    m.add_argument("-m", "--model", default=os.environ.get("GLINER_JAX_MODEL"),
                   help="GLiNER directory (reference layout) or hub id (default: "
                        "$GLINER_JAX_MODEL, else the shipped model in checkpoints/)")
    m.add_argument("-l", "--labels",
                   help="entity types: a comma list (person,organization) or @FILE (one per "
                        "line); JSONL lines may carry their own \"labels\"")
    m.add_argument("--label-cache", metavar="FILE",
                   help="bi-encoder models: label vectors are read from FILE when it exists, "
                        "else computed once and written there for later runs")
    m.add_argument("-r", "--relations",
                   help="relation types (relex models: relations_layer in the config): a comma "
                        "list (works at,born in) or @FILE; adds \"relations\": [{\"head\", "
                        "\"tail\", \"relation\", \"score\"}] to each result")
    m.add_argument("--relation-threshold", type=_fraction, metavar="T",
                   help="keep relations scoring above this (default: --threshold)")
    m.add_argument("--adjacency-threshold", type=_fraction, metavar="T",
                   help="relex models: entity pairs whose adjacency is above this are scored "
                        "(default: --threshold)")
    m.add_argument("-t", "--threshold", type=_fraction, default=0.5,
                   help="keep spans scoring above this (default 0.5)")
    m.add_argument("--nested", action="store_true",
                   help="allow entities inside entities (default: flat, no overlaps)")
    m.add_argument("--multi-label", action="store_true",
                   help="allow several labels on the same span")
    m.add_argument("--merge-entities", action="store_true",
                   help="join an entity to the one before it when they share a label and at "
                        "most one character separates them (NuNER Zero's post-processing)")
    m.add_argument("-b", "--batch-size", type=_positive, default=8,
                   help="rows per forward pass and device (default 8); with several devices a "
                        "batch is split over all of them")
    m.add_argument("--window-size", type=_positive, metavar="WORDS",
                   help="words per window of a long text (default: the model's max_len)")
    m.add_argument("--window-stride", type=_positive, metavar="WORDS",
                   help="words between window starts (default: 3/4 of the window)")
    m.add_argument("--truncate", action="store_true",
                   help="cut texts at max_len words instead of windowing (the reference's "
                        "behaviour)")
    m.add_argument("--device", choices=["cpu", "gpu", "tpu"],
                   help="where to run (default: JAX's default, the accelerator if any)")
    m.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="compute dtype (default float32; bfloat16 is faster on GPU / TPU)")
    m.add_argument("--cache-dir", metavar="DIR",
                   help="persistent compilation cache (default: $GLINER_JAX_CACHE, else "
                        "~/.cache/gliner_jax/xla); 'none' turns it off")
    h = ap.add_argument_group(
        "several processes (hosts)",
        "run the same command on every host: each predicts its share of the input, process 0 "
        "writes all results in input order")
    h.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    h.add_argument("--num-processes", type=_positive, metavar="N")
    h.add_argument("--process-id", type=int, metavar="I", help="0 .. N-1")
    h.add_argument("--distributed", action="store_true",
                   help="let JAX detect the cluster (TPU pod, SLURM, ...)")
    h.add_argument("--heartbeat-timeout", type=_positive, default=60, metavar="S",
                   help="seconds without a heartbeat after which a process counts as dead "
                        "(default 60)")
    return ap


# ------------------------------------------------------------------------------------------------
# inputs


def _read_units(args) -> tuple[list, str, str, bool]:
    """(units, input name, format, from_file): the texts given as arguments, or the raw lines
    (or the document) of --input or standard input, not yet parsed."""
    if args.texts and args.input:
        raise UsageError("give texts as arguments or --input FILE, not both")
    if args.texts:
        if args.document:
            raise UsageError("--document applies to --input or standard input")
        return list(args.texts), "argument", "args", False
    name = args.input or "-"
    if name == "-" and sys.stdin.isatty():
        raise UsageError("no input: give texts as arguments, --input FILE, or pipe them in")
    fmt = args.input_format or ("jsonl" if name.endswith((".jsonl", ".ndjson")) else "txt")
    if fmt == "jsonl" and args.document:
        raise UsageError("--document applies to text input, not JSONL")
    stream = sys.stdin.buffer if name == "-" else None
    name = "<stdin>" if stream else name
    return read_units(name, fmt=fmt, document=args.document, stream=stream), name, fmt, True


def _parse(units, lo: int, name: str, fmt: str, args, policy: ErrorPolicy) -> list[Record]:
    if fmt == "args":
        return [Record(i, t, where=f"argument {i + 1}") for i, t in enumerate(units, start=lo)]
    return parse_units(units, lo, name, fmt=fmt, document=args.document, policy=policy)


def _attach_labels(records: list[Record], labels, policy: ErrorPolicy) -> list[Record]:
    """Every record gets a label set: its own (JSONL) or --labels."""
    if labels is not None:
        return [r if r.labels else Record(r.id, r.text, labels, r.where) for r in records]
    missing = [r for r in records if r.labels is None]
    if missing and len(missing) == len(records):
        raise UsageError("no entity labels: pass --labels person,organization (or @FILE), or "
                         "give \"labels\" in each JSONL line")
    for r in missing:
        policy.bad(f"{r.where}: no \"labels\" in this line and no --labels given")
    return [r for r in records if r.labels is not None]


# ------------------------------------------------------------------------------------------------
# JAX and the model


def _configure_jax(args) -> None:
    """Settings read when JAX starts its backends: before jax.distributed and any device."""
    cache = args.cache_dir or os.environ.get("GLINER_JAX_CACHE")
    if cache is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        cache = Path(base) / "gliner_jax" / "xla"
    import jax

    if args.device == "cpu":
        jax.config.update("jax_platforms", "cpu")  # do not start (and fill) an accelerator

    if str(cache).lower() != "none":
        jax.config.update("jax_compilation_cache_dir", str(cache))
        # the forward pass compiles in ~1 s per shape on a CPU; cache every program that
        # takes noticeable time, not the many tiny ones
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def _check_device(args) -> None:
    import jax

    if args.device is not None:
        try:
            devices = jax.devices(args.device)
        except RuntimeError:
            have = sorted({d.platform for d in jax.devices()})
            raise UsageError(f"--device {args.device}: JAX has no such device here "
                             f"(available: {', '.join(have)})") from None
        jax.config.update("jax_default_device", devices[0])


def _model_source(args) -> str:
    if args.model:
        return args.model
    try:
        return str(default_model(CHECKPOINTS))
    except NoShippedModel as e:
        raise ModelError(str(e)) from None


def _load_model(args):
    import jax.numpy as jnp

    from gliner_jax.config import ConfigError
    from gliner_jax.convert import ModelLoadError
    from gliner_jax.model import GLiNER
    from gliner_jax.weights import WeightsError

    source = _model_source(args)
    dtype = jnp.bfloat16 if args.dtype == "bfloat16" else None
    try:
        model = GLiNER.from_pretrained(source, dtype=dtype)
    except (ModelLoadError, WeightsError, ConfigError) as e:
        raise ModelError(str(e)) from None
    try:
        model.window_shape(args.window_size, args.window_stride)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.relations and not getattr(model, "extracts_relations", False):
        raise UsageError(f"--relations needs a relation-extraction model (relations_layer in "
                         f"its gliner_config.json); {source} has none")
    if args.merge_entities and args.relations:
        raise UsageError("--merge-entities cannot be combined with --relations")
    if (args.relation_threshold is not None or args.adjacency_threshold is not None) \
            and not args.relations:
        raise UsageError("--relation-threshold / --adjacency-threshold need --relations")
    return model


def _use_label_cache(model, path: str, records: list[Record]) -> None:
    """Bi-encoders: read the label vectors from `path`, or compute every label of the run once
    and write them there. (Without a file they are still computed once per run.)"""
    if not hasattr(model, "load_label_cache"):
        raise UsageError("--label-cache needs a bi-encoder model (labels_encoder in its config)")
    if os.path.exists(path):
        try:
            model.load_label_cache(path)
        except ValueError as e:
            raise UsageError(f"--label-cache {e}") from None
        return
    from gliner_jax.processing import normalize_labels

    prompts = dict.fromkeys(p for r in records for p in normalize_labels(r.labels)[0])
    try:
        model.save_label_cache(path, list(prompts))
    except OSError as e:
        raise UsageError(f"--label-cache {path}: cannot write ({e.strerror or e})") from None


# ------------------------------------------------------------------------------------------------
# running


def _predict(model, mine: dict[int, list[Record]], n_chunks: int, hosts: Hosts, args, bar):
    """Yields (record, entities, relations or None) of all chunks in input order (other
    processes' chunks too, on every process), chunk by chunk; this process predicts only its
    own."""
    relations = parse_labels(args.relations) if args.relations else None
    kw = {}
    if relations is not None:
        kw = dict(relations=relations, relation_threshold=args.relation_threshold,
                  adjacency_threshold=args.adjacency_threshold, return_relations=True)
    elif getattr(model, "extracts_relations", False):
        kw = dict(return_relations=False)
    if args.merge_entities:
        kw["merge_entities"] = True

    def predict(chunk: list[Record]):
        out = model.inference(
            [r.text for r in chunk], [r.labels for r in chunk],
            batch_size=args.batch_size * model._shards, threshold=args.threshold,
            flat_ner=not args.nested, multi_label=args.multi_label, truncate=args.truncate,
            window_size=args.window_size, window_stride=args.window_stride,
            progress=bar.update, **kw)
        ents, rels = out if relations is not None else (out, [None] * len(chunk))
        return zip(ents, rels, strict=True)

    for rnd in hosts.rounds(n_chunks):
        own = [(r, e, rel) for k in rnd if k in mine
               for r, (e, rel) in zip(mine[k], predict(mine[k]), strict=True)]
        if not hosts.multi:
            yield from own
            continue
        # chunk rnd[j] belongs to process j: gathered in process order = input order
        parts = hosts.gather([[r.id, r.text, e, rel] for r, e, rel in own])
        bar.update(sum(len(p) for i, p in enumerate(parts) if i != hosts.index))
        for part in parts:
            yield from ((Record(i, t), e, rel) for i, t, e, rel in part)


def _write(pairs, out, fmt: str, bar) -> int:
    """Write each (record, entities) as it comes (json: all at the end); the entity count.
    When the output and the progress bar share a terminal, the bar is cleared before each write
    and redrawn after, so that no output line is glued to it."""
    if fmt == "json":
        pairs = list(pairs)
        bar.clear()
        json.dump([result(r, e, rel) for r, e, rel in pairs], out, ensure_ascii=False, indent=2)
        out.write("\n")
        return sum(len(e) for _, e, _ in pairs)
    n, color, palette = 0, fmt == "text" and use_color(out), {}
    shared = not bar.disable and _isatty(out) and _isatty(bar.fp)
    for r, e, rel in pairs:
        line = to_json_line(r, e, rel) if fmt == "jsonl" else to_text(
            r, e, color=color, palette=palette, relations=rel)
        if shared:
            bar.clear()
        out.write(line + "\n")
        out.flush()
        if shared:
            bar.refresh()
        n += len(e)
    return n


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


# library loggers whose notices ("PyTorch was not found", "Token indices sequence length is
# longer than the specified maximum ...", platform probing) are not for the command's users
_LIBRARY_LOGGERS = ("jax", "jaxlib", "absl", "transformers", "huggingface_hub", "flax", "orbax",
                    "tokenizers")


def _configure_warnings(verbose: bool = False) -> None:
    """Our own warnings (gliner_jax's) as `warning: ...` lines, at most 3 per kind; library
    notices and warnings only with --verbose."""
    shown: dict[type, int] = {}

    def show(message, category, filename, lineno, file=None, line=None):
        ours = category.__module__.startswith("gliner_jax") or "gliner_jax" in Path(filename).parts
        if not (ours or verbose):
            return
        shown[category] = shown.get(category, 0) + 1
        if shown[category] <= 3:
            print(f"warning: {message}", file=sys.stderr)
        elif shown[category] == 4:
            print(f"warning: further {category.__name__}s not shown", file=sys.stderr)

    warnings.showwarning = show
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if verbose:
        return
    import logging

    # set before transformers / JAX are imported: both read these at import time
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"
    os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # XLA's C++ log lines
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def _agree(hosts: Hosts, error: Exception | None) -> None:
    """All processes stop on the first one's error (input, model), each with its message."""
    kind = None if error is None else ("model" if isinstance(error, ModelError) else "usage")
    for p, found in enumerate(hosts.gather(None if error is None else [kind, str(error)])):
        if found is not None:
            where = f"process {p}: " if hosts.multi and p != hosts.index else ""
            raise (ModelError if found[0] == "model" else UsageError)(where + found[1])


def _read_share(args, hosts: Hosts, policy: ErrorPolicy):
    """({chunk: its records} of this process's chunks, number of chunks, from_file)."""
    labels = parse_labels(args.labels) if args.labels is not None else None
    units, name, fmt, from_file = _read_units(args)
    bounds = chunk_bounds(len(units), args.batch_size, MAX_CHUNK)
    mine = {k: _parse(units[lo:hi], lo, name, fmt, args, policy)
            for k, (lo, hi) in enumerate(bounds) if hosts.mine(k)}
    if labels is None and mine and not any(r.labels for c in mine.values() for r in c):
        _attach_labels([r for c in mine.values() for r in c], labels, policy)  # raises
    return {k: _attach_labels(c, labels, policy) for k, c in mine.items()}, len(bounds), from_file


def run(args, hosts: Hosts) -> int:
    t0 = time.perf_counter()
    _configure_warnings(args.verbose)
    policy = ErrorPolicy(args.skip_errors)
    if hosts.multi:  # JAX is already up: each process stops only after all have read
        try:
            mine, n_chunks, from_file = _read_share(args, hosts, policy)
            error = None
        except (UsageError, InputError) as e:
            mine, n_chunks, from_file, error = {}, 0, False, e
        _agree(hosts, error)
    else:  # inputs are checked before JAX starts
        mine, n_chunks, from_file = _read_share(args, hosts, policy)
        _configure_jax(args)
    model, error = None, None
    try:
        _check_device(args)
        model = _load_model(args)
        if args.label_cache:
            if hosts.multi and not os.path.exists(args.label_cache):
                raise UsageError(f"--label-cache {args.label_cache}: with several processes "
                                 "the file must exist (write it with one process first)")
            _use_label_cache(model, args.label_cache, [r for c in mine.values() for r in c])
    except (UsageError, ModelError) as e:
        if not hosts.multi:
            raise
        error = e
    _agree(hosts, error)
    mesh = local_mesh()
    if mesh is not None:
        model.use_mesh(mesh)
    counts = hosts.gather([sum(map(len, mine.values())), policy.skipped])
    total, skipped = sum(c[0] for c in counts), [m for c in counts for m in c[1]]

    from tqdm import tqdm

    writer = hosts.index == 0
    out = Output(args.output) if writer else None
    show_bar = from_file and not args.quiet and writer
    try:
        with tqdm(total=total, unit="text", file=sys.stderr, leave=False, smoothing=0.1,
                  disable=None if show_bar else True, dynamic_ncols=True) as bar:
            pairs = _predict(model, mine, n_chunks, hosts, args, bar)
            if writer:
                n_ents = _write(pairs, out.stream, args.format, bar)
            else:
                for _ in pairs:
                    pass
    except BaseException:
        if out is not None:
            out.discard()
        raise
    if out is not None:
        out.commit()
    if skipped and writer:
        print(f"warning: skipped {len(skipped)} bad input line(s); the first: "
              f"{skipped[0]}", file=sys.stderr)
    if show_bar:
        dt = time.perf_counter() - t0
        print(f"{total} texts, {n_ents} entities in {dt:.1f} s "
              f"({total / dt:.1f} texts/s)", file=sys.stderr)
    return 0


def _join(args) -> Hosts:
    if not (args.coordinator or args.num_processes or args.process_id is not None
            or args.distributed):
        return Hosts()
    _configure_warnings(args.verbose)  # before JAX starts
    _configure_jax(args)
    protect_stdout(args.verbose)
    try:
        return join(args.coordinator, args.num_processes, args.process_id, args.distributed,
                    args.heartbeat_timeout)
    except JoinError as e:
        raise UsageError(str(e)) from None


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    hosts = Hosts()
    try:
        hosts = _join(args)
        code = run(args, hosts)
        if not hosts.multi:
            return code
        # all processes are done; then each leaves without jax.distributed's shutdown RPCs
        # (below): process 0 hosts the coordination service, and a process still saying
        # goodbye when it stops would abort (seen under load)
        hosts.gather(None)
        msg = None
    except PeerLost as e:
        code, msg = EXIT_FAILURE, str(e)
    except (UsageError, InputError) as e:
        code, msg = EXIT_USAGE, str(e)
    except ModelError as e:
        code, msg = EXIT_MODEL, str(e)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `| head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as e:  # never a traceback, unless asked for
        if os.environ.get("GLINER_JAX_DEBUG"):
            raise
        code = EXIT_FAILURE
        msg = f"{type(e).__name__}: {e} (set GLINER_JAX_DEBUG=1 for the traceback)"
    if msg is not None:
        print(f"error: {' '.join(msg.split())}", file=sys.stderr)
    if hosts.multi:  # skip jax.distributed's shutdown barrier: the others may be gone
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
