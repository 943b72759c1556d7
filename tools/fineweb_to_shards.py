#!/usr/bin/env python3
"""FineWeb or FineWeb-Edu documents into ratplus token shards, through `ratplus data prepare`.

Usage:
  fineweb_to_shards.py --tokenizer tokenizer.model --out data/fineweb
                       [--dataset fineweb-edu|fineweb|OWNER/NAME] [--name CONFIG] [--split train]
                       [--parquet FILE ...] [--jsonl FILE ...]
                       [--max-docs N] [--max-tokens N] [--jsonl-dir DIR] [--ratplus PATH]
                       [--text-field text] [--eos] [--val-fraction F] [--shard-tokens N] [--threads N]

Documents come from one source:
  --dataset  the Hugging Face hub, streamed with the `datasets` library (load_dataset(...,
             streaming=True)); `fineweb-edu` (the default) and `fineweb` stand for
             HuggingFaceFW/fineweb-edu and HuggingFaceFW/fineweb; --name picks a config such as
             sample-10BT;
  --parquet  local parquet files, e.g. downloaded FineWeb shards (read with pyarrow);
  --jsonl    local JSON Lines files, one JSON object per line.
Each document is the string field --text-field of a row; empty ones are skipped and not counted.
They are written in order to JSON Lines files ({"text": ...} per line, at most 1 GB each) in a
new temporary folder beside --out (or in --jsonl-dir, which keeps them), and `ratplus data
prepare` then tokenizes those files into --out (prepare reads files, not a pipe). The
temporary folder is removed when done or on failure.

Limits (counts take a suffix K, M or B): --max-docs N takes the first N documents; --max-tokens N takes documents until they hold
at least N tokens as `data prepare` counts them (BOS + the tokenizer's ids, + EOS with --eos),
counted with the `sentencepiece` Python module (Debian: python3-sentencepiece), so the last
document taken crosses N.

Exit codes: 0 done, 2 bad input (the message names the option, file and line), 1 an I/O
failure; a failing `data prepare` passes its own exit code on.
"""

import argparse
import importlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile

HUB_NAMES = {"fineweb-edu": "HuggingFaceFW/fineweb-edu", "fineweb": "HuggingFaceFW/fineweb"}
JSONL_FILE_BYTES = 1 << 30  # a new JSON Lines file after this many bytes
PARQUET_BATCH_ROWS = 1024
HERE = os.path.dirname(os.path.abspath(__file__))
PYARROW_MISSING = "--parquet needs pyarrow (pip install pyarrow)"
DATASETS_MISSING = ("--dataset needs the Hugging Face `datasets` library (pip install datasets); "
                    "or download the parquet files and give them with --parquet")


class InputError(Exception):
    """Bad input: the message names the option, the file or the line."""


# ---------------------------------------------------------------------------- sources

def _text(value, where):
    if not isinstance(value, str):
        raise InputError("%s: the text field is not a string (%s)" % (where, type(value).__name__))
    return value


def jsonl_documents(paths, field):
    for path in paths:
        try:
            stream = open(path, encoding="utf-8")
        except OSError as exc:
            raise InputError("--jsonl: cannot open %s (%s)" % (path, exc.strerror)) from exc
        with stream:
            try:
                for number, line in enumerate(stream, 1):
                    if not line.strip():
                        continue
                    where = "%s:%d" % (path, number)
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        raise InputError("%s: not JSON (%s)" % (where, exc)) from exc
                    if not isinstance(row, dict) or field not in row:
                        raise InputError("%s: not a JSON object with the field %r" % (where, field))
                    yield _text(row[field], where)
            except UnicodeDecodeError as exc:
                raise InputError("%s: not UTF-8 text (%s)" % (path, exc)) from exc


def require_module(name, message):
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise InputError(message) from exc


def parquet_documents(paths, field):
    pq = require_module("pyarrow.parquet", PYARROW_MISSING)
    for path in paths:
        try:
            table = pq.ParquetFile(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError("--parquet: %s: cannot read (%s)" % (path, exc)) from exc
        if field not in table.schema_arrow.names:
            raise InputError("--parquet: %s: no column %r (it has %s)"
                             % (path, field, ", ".join(table.schema_arrow.names)))
        row = 0
        for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[field]):
            for value in batch.column(0).to_pylist():
                yield _text(value, "%s: row %d" % (path, row))
                row += 1


def hub_documents(dataset, name, split, field):
    datasets = require_module("datasets", DATASETS_MISSING)
    stream = datasets.load_dataset(HUB_NAMES.get(dataset, dataset), name=name, split=split, streaming=True)
    for row, item in enumerate(stream):
        if field not in item:
            raise InputError("--dataset %s: row %d has no field %r" % (dataset, row, field))
        yield _text(item[field], "--dataset %s: row %d" % (dataset, row))


def documents(args):
    """The source's non-empty documents, in order."""
    if args.jsonl:
        docs = jsonl_documents(args.jsonl, args.text_field)
    elif args.parquet:
        docs = parquet_documents(args.parquet, args.text_field)
    else:
        docs = hub_documents(args.dataset, args.name, args.split, args.text_field)
    return (text for text in docs if text)


# ----------------------------------------------------------------------------- limits

def token_counter(tokenizer_path, eos):
    """The tokens `data prepare` makes of a document: BOS + ids (+ EOS)."""
    try:
        import sentencepiece
    except ImportError as exc:
        raise InputError("--max-tokens needs the sentencepiece Python module "
                         "(Debian: python3-sentencepiece; pip install sentencepiece)") from exc
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.Load(tokenizer_path)
    except (OSError, RuntimeError) as exc:
        raise InputError("--tokenizer: %s does not load (%s)" % (tokenizer_path, exc)) from exc
    extra = 2 if eos else 1
    return lambda text: len(processor.EncodeAsIds(text)) + extra


def limited(docs, max_docs, max_tokens, count_tokens):
    """The first max_docs documents, and only until they hold max_tokens tokens."""
    if max_docs is not None:
        docs = itertools.islice(docs, max_docs)
    total = 0
    for text in docs:
        if max_tokens is not None and total >= max_tokens:
            return
        yield text
        if max_tokens is not None:
            total += count_tokens(text)


# ----------------------------------------------------------------------------- output

def write_jsonl(docs, folder):
    """Writes the documents to folder/part_NNNNNN.jsonl files; returns (paths, documents, bytes)."""
    paths, count, total, stream, size = [], 0, 0, None, 0
    try:
        for text in docs:
            if stream is None or size >= JSONL_FILE_BYTES:
                if stream is not None:
                    stream.close()
                paths.append(os.path.join(folder, "part_%06d.jsonl" % len(paths)))
                stream, size = open(paths[-1], "w", encoding="utf-8"), 0
            line = json.dumps({"text": text}, ensure_ascii=False) + "\n"
            stream.write(line)
            size += len(line)
            total += len(line)
            count += 1
    finally:
        if stream is not None:
            stream.close()
    return paths, count, total


def find_ratplus(given):
    candidates = [given] if given else [os.environ.get("RATPLUS"), os.path.join(HERE, "..", "build", "ratplus"),
                                        shutil.which("ratplus")]
    for path in filter(None, candidates):
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise InputError("--ratplus: %s" % ("%s is not an executable file" % given if given else
                                        "no ratplus binary (not in $RATPLUS, build/ or PATH); give --ratplus"))


def check_arguments(args):
    sources = [bool(args.jsonl), bool(args.parquet), args.dataset is not None]
    if sum(sources) > 1:
        raise InputError("give one source: --dataset, --parquet or --jsonl")
    if not any(sources):
        args.dataset = "fineweb-edu"
    if args.parquet:
        require_module("pyarrow.parquet", PYARROW_MISSING)
    if args.dataset is not None:
        require_module("datasets", DATASETS_MISSING)
    if not os.path.isfile(args.tokenizer):
        raise InputError("--tokenizer: %s: no such file" % args.tokenizer)
    for path in args.jsonl or args.parquet or []:
        if not os.path.isfile(path):
            raise InputError("%s: %s: no such file" % ("--jsonl" if args.jsonl else "--parquet", path))
    if os.path.exists(args.out) and not (os.path.isdir(args.out) and not os.listdir(args.out)):
        raise InputError("--out: %s exists and is not an empty directory" % args.out)
    if args.jsonl_dir and os.path.exists(args.jsonl_dir) and not (
            os.path.isdir(args.jsonl_dir) and not os.listdir(args.jsonl_dir)):
        raise InputError("--jsonl-dir: %s exists and is not an empty directory" % args.jsonl_dir)
    parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(parent):
        raise InputError("--out: the folder %s does not exist" % parent)


def prepare_command(binary, args, inputs):
    command = [binary, "data", "prepare", "--tokenizer", args.tokenizer, "--input"] + inputs + \
        ["--out", args.out, "--text-field", "text"]
    for option, value in (("--val-fraction", args.val_fraction), ("--shard-tokens", args.shard_tokens),
                          ("--threads", args.threads)):
        if value is not None:
            command += [option, str(value)]
    return command + (["--eos"] if args.eos else [])


def run(args):
    check_arguments(args)
    binary = find_ratplus(args.ratplus)
    count_tokens = token_counter(args.tokenizer, args.eos) if args.max_tokens is not None else None
    if args.jsonl_dir:
        os.makedirs(args.jsonl_dir, exist_ok=True)
        folder = args.jsonl_dir
    else:
        folder = tempfile.mkdtemp(prefix=".fineweb-jsonl-", dir=os.path.dirname(os.path.abspath(args.out)))
    try:
        docs = limited(documents(args), args.max_docs, args.max_tokens, count_tokens)
        paths, count, size = write_jsonl(docs, folder)
        if not count:
            raise InputError("the source holds no document")
        print("fineweb_to_shards: %d documents, %d bytes of JSON Lines in %s; running data prepare"
              % (count, size, folder), file=sys.stderr)
        return subprocess.run(prepare_command(binary, args, paths)).returncode
    finally:
        if not args.jsonl_dir:
            shutil.rmtree(folder, ignore_errors=True)


def count(text):
    """A count >= 1, with an optional suffix K, M or B (10^3, 10^6, 10^9) as `data prepare` takes."""
    scale = {"k": 10 ** 3, "m": 10 ** 6, "b": 10 ** 9}.get(text[-1:].lower(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit() or int(digits) * scale < 1:
        raise argparse.ArgumentTypeError("expected a whole number >= 1 with an optional suffix K, M or B, "
                                         "got %r" % text)
    return int(digits) * scale


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--tokenizer", required=True, help="SentencePiece model (LLaMA-2's tokenizer.model)")
    parser.add_argument("--out", required=True, help="output directory for the shards (new or empty)")
    parser.add_argument("--dataset", help="hub dataset: fineweb-edu (default), fineweb or OWNER/NAME")
    parser.add_argument("--name", help="hub dataset config, e.g. sample-10BT")
    parser.add_argument("--split", default="train", help="hub dataset split (default train)")
    parser.add_argument("--parquet", nargs="+", metavar="FILE", help="local parquet files instead of the hub")
    parser.add_argument("--jsonl", nargs="+", metavar="FILE", help="local JSON Lines files instead of the hub")
    parser.add_argument("--text-field", default="text", help="the field or column holding the text")
    parser.add_argument("--max-docs", type=count, metavar="N", help="take the first N documents")
    parser.add_argument("--max-tokens", type=count, metavar="N",
                        help="take documents until they hold N tokens (needs the sentencepiece module)")
    parser.add_argument("--jsonl-dir", metavar="DIR", help="write and keep the JSON Lines files here")
    parser.add_argument("--ratplus", metavar="PATH", help="the ratplus binary (default: $RATPLUS, build/, PATH)")
    parser.add_argument("--eos", action="store_true", help="data prepare --eos: end every document with EOS")
    parser.add_argument("--val-fraction", type=float, help="data prepare --val-fraction")
    parser.add_argument("--shard-tokens", help="data prepare --shard-tokens (e.g. 100M)")
    parser.add_argument("--threads", type=int, help="data prepare --threads")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return run(args)
    except InputError as exc:
        print("fineweb_to_shards: %s" % exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print("fineweb_to_shards: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
