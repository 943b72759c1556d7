#!/usr/bin/env python3
"""Black-box check of tools/fineweb_to_shards.py on local FineWeb-like files (no network).

Usage: python3 test_fineweb_to_shards.py /path/to/ratplus

A SentencePiece model is trained here with spm_train; FineWeb-like JSON Lines files (text plus
id, url, dump and token_count fields, one empty text) are the source. Checks:
- --max-docs N: the kept JSON Lines hold exactly the first N non-empty texts, and the shards and
  split counts are byte for byte those of `ratplus data prepare` run directly on a file of those
  texts written here; the temporary folder is gone afterwards;
- --max-tokens N (with the sentencepiece Python module): the documents taken hold at least N tokens
  by the manifest's count, and one document fewer holds fewer; without the module, exit 2;
- --parquet gives the same shards as --jsonl when pyarrow is installed, else exits 2 saying so;
  --dataset exits 2 naming the `datasets` library when it is not installed, and through a stand-in
  `datasets` module streams the named hub dataset (streaming=True) into the same shards;
- bad input exits 2 naming the option, file and line, with no output directory and no temporary
  folder left behind.
Prints one line per check and `N passed, M failed`; exits 77 without spm_train or without
SentencePiece in the build.
"""

import filecmp
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "..", "tools", "fineweb_to_shards.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
WORDS = ("the a model reads text and writes tokens while every layer keeps its state small fast "
         "web page school lesson").split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))


def write_source(folder):
    """Two FineWeb-like JSON Lines files; returns (paths, the non-empty texts in order)."""
    rng = random.Random(11)
    paths, texts = [], []
    for part in range(2):
        path = os.path.join(folder, "fineweb_%d.jsonl" % part)
        with open(path, "w") as f:
            for i in range(30):
                text = "" if (part, i) == (0, 5) else sentence(rng) + (" école" if i % 7 == 0 else "")
                row = {"text": text, "id": "<urn:uuid:%d-%d>" % (part, i), "dump": "CC-MAIN-2024-10",
                       "url": "https://example.org/%d" % i, "token_count": len(text.split())}
                f.write(json.dumps(row) + "\n")
                if text:
                    texts.append(text)
        paths.append(path)
    return paths, texts


FAKE_DATASETS = """# Stands for the Hugging Face `datasets` library: streams the rows of a local file.
import json, os

def load_dataset(path, name=None, split=None, streaming=False):
    with open(os.environ["FAKE_HUB_LOG"], "w") as log:
        json.dump({"path": path, "name": name, "split": split, "streaming": streaming}, log)
    with open(os.environ["FAKE_HUB_ROWS"]) as rows:
        for line in rows:
            yield json.loads(line)
"""


def run(command, cwd, env=None):
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env=None if env is None else dict(os.environ, **env))


def script(*args, cwd, env=None):
    return run([PYTHON, SCRIPT] + list(args), cwd, env)


def check_hub(res, tmp, sources, common, n):
    """--dataset through a stand-in `datasets` module that streams the same rows as the files."""
    fake = os.path.join(tmp, "fakehub")
    os.mkdir(fake)
    with open(os.path.join(fake, "datasets.py"), "w") as f:
        f.write(FAKE_DATASETS)
    with open(os.path.join(tmp, "hub_rows.jsonl"), "w") as f:
        for path in sources:
            f.write(open(path).read())
    env = {"PYTHONPATH": fake, "FAKE_HUB_LOG": os.path.join(tmp, "hub_log.json"),
           "FAKE_HUB_ROWS": os.path.join(tmp, "hub_rows.jsonl")}
    proc = script("--dataset", "fineweb-edu", "--name", "sample-10BT", "--max-docs", n, "--out", "hub",
                  *common, cwd=tmp, env=env)
    if res.check("--dataset (stand-in library) exits 0", proc.returncode == 0, proc.stderr):
        log = json.load(open(env["FAKE_HUB_LOG"]))
        res.check("--dataset fineweb-edu streams HuggingFaceFW/fineweb-edu sample-10BT train",
                  log == {"path": "HuggingFaceFW/fineweb-edu", "name": "sample-10BT", "split": "train",
                          "streaming": True}, str(log))
        res.check("--dataset gives the --jsonl shards",
                  same_shards(os.path.join(tmp, "hub"), os.path.join(tmp, "docs")))


def shards(folder):
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(folder, "*.bin")))


def same_shards(a, b):
    names = shards(a)
    return bool(names) and names == shards(b) and all(
        filecmp.cmp(os.path.join(a, n), os.path.join(b, n), shallow=False) for n in names)


def manifest(folder):
    return json.load(open(os.path.join(folder, "manifest.json")))


def totals(m):
    return (sum(m.get(s, {}).get("documents", 0) for s in ("train", "val")),
            sum(m.get(s, {}).get("tokens", 0) for s in ("train", "val")))


def no_temporary(folder):
    return not [n for n in os.listdir(folder) if n.startswith(".fineweb-jsonl-")]


def main():
    if len(sys.argv) != 2:
        print("usage: test_fineweb_to_shards.py /path/to/ratplus", file=sys.stderr)
        return 2
    binary = os.path.abspath(sys.argv[1])
    if not shutil.which("spm_train"):
        print("SKIP: spm_train not found (apt-get install sentencepiece)")
        return 77
    res = harness.Results()
    with tempfile.TemporaryDirectory(prefix="ratplus-fineweb-") as tmp:
        sources, texts = write_source(tmp)
        with open(os.path.join(tmp, "corpus.txt"), "w") as f:
            f.write("\n".join(texts) + "\n")
        run(["spm_train", "--input=corpus.txt", "--model_prefix=sp", "--vocab_size=300",
             "--hard_vocab_limit=false", "--model_type=unigram", "--character_coverage=1.0",
             "--byte_fallback=true", "--normalization_rule_name=identity",
             "--remove_extra_whitespaces=false"], tmp)
        if not res.check("spm_train made a model", os.path.isfile(os.path.join(tmp, "sp.model"))):
            return 1
        probe = run([binary, "data", "prepare", "--tokenizer", "sp.model", "--input", sources[0],
                     "--out", "probe"], tmp)
        if "no SentencePiece library" in probe.stderr:
            print("SKIP: this build has no SentencePiece")
            return 77
        common = ["--tokenizer", "sp.model", "--ratplus", binary, "--val-fraction", "0.2",
                  "--shard-tokens", "300", "--eos"]

        # --max-docs: the first N non-empty texts, tokenized exactly as a direct data prepare does.
        n = 40
        proc = script("--jsonl", *sources, "--max-docs", n, "--jsonl-dir", "kept", "--out", "docs",
                      *common, cwd=tmp)
        if res.check("--max-docs %d exits 0" % n, proc.returncode == 0, proc.stderr):
            kept = [json.loads(line)["text"] for p in sorted(glob.glob(os.path.join(tmp, "kept", "*.jsonl")))
                    for line in open(p)]
            res.check("kept JSON Lines hold the first %d non-empty texts" % n, kept == texts[:n])
            with open(os.path.join(tmp, "expected.jsonl"), "w") as f:
                for text in texts[:n]:
                    f.write(json.dumps({"text": text}) + "\n")
            direct = run([binary, "data", "prepare", "--tokenizer", "sp.model", "--input", "expected.jsonl",
                          "--out", "direct", "--val-fraction", "0.2", "--shard-tokens", "300", "--eos"], tmp)
            res.check("direct data prepare exits 0", direct.returncode == 0, direct.stderr)
            res.check("shards equal a direct data prepare's",
                      same_shards(os.path.join(tmp, "docs"), os.path.join(tmp, "direct"))
                      and len(shards(os.path.join(tmp, "docs"))) > 2)
            res.check("split counts equal a direct data prepare's",
                      totals(manifest(os.path.join(tmp, "docs"))) == totals(manifest(os.path.join(tmp, "direct")))
                      and totals(manifest(os.path.join(tmp, "docs")))[0] == n)

        proc = script("--jsonl", *sources, "--max-docs", "1K", "--out", "all", *common, cwd=tmp)
        if res.check("--max-docs 1K exits 0", proc.returncode == 0, proc.stderr):
            res.check("--max-docs 1K takes every one of fewer non-empty documents",
                      totals(manifest(os.path.join(tmp, "all")))[0] == len(texts))
        res.check("the temporary JSON Lines folder is removed", no_temporary(tmp), str(os.listdir(tmp)))

        # --max-tokens: the documents taken reach the budget, one fewer does not.
        budget = 700
        proc = script("--jsonl", *sources, "--max-tokens", budget, "--out", "budget", *common, cwd=tmp)
        if run([PYTHON, "-c", "import sentencepiece"], tmp).returncode != 0:
            res.check("--max-tokens without sentencepiece exits 2",
                      proc.returncode == 2 and "sentencepiece" in proc.stderr, proc.stderr)
        elif res.check("--max-tokens %d exits 0" % budget, proc.returncode == 0, proc.stderr):
            docs, tokens = totals(manifest(os.path.join(tmp, "budget")))
            fewer = script("--jsonl", *sources, "--max-docs", docs - 1, "--out", "fewer", *common, cwd=tmp)
            res.check("--max-docs %d exits 0" % (docs - 1), fewer.returncode == 0, fewer.stderr)
            res.check("--max-tokens %d: %d documents hold %d tokens, one fewer %d"
                      % (budget, docs, tokens, totals(manifest(os.path.join(tmp, "fewer")))[1]),
                      1 < docs < len(texts) and tokens >= budget
                      and totals(manifest(os.path.join(tmp, "fewer")))[1] < budget)

        # --parquet (pyarrow) and --dataset (datasets) where their libraries are missing.
        proc = script("--parquet", "x.parquet", "--out", "pq", *common, cwd=tmp)
        has_pyarrow = run([PYTHON, "-c", "import pyarrow"], tmp).returncode == 0
        if has_pyarrow:
            import pyarrow
            import pyarrow.parquet
            rows = [json.loads(line) for line in open(sources[0])] + [json.loads(line) for line in open(sources[1])]
            pyarrow.parquet.write_table(pyarrow.table({"text": [r["text"] for r in rows],
                                                       "id": [r["id"] for r in rows]}),
                                        os.path.join(tmp, "x.parquet"), row_group_size=7)
            proc = script("--parquet", "x.parquet", "--max-docs", n, "--out", "pq", *common, cwd=tmp)
            res.check("--parquet gives the --jsonl shards", proc.returncode == 0
                      and same_shards(os.path.join(tmp, "pq"), os.path.join(tmp, "docs")), proc.stderr)
        else:
            res.check("--parquet without pyarrow exits 2", proc.returncode == 2 and "pyarrow" in proc.stderr
                      and not os.path.exists(os.path.join(tmp, "pq")), proc.stderr)
        if run([PYTHON, "-c", "import datasets"], tmp).returncode != 0:
            proc = script("--dataset", "fineweb-edu", "--name", "sample-10BT", "--out", "hub", *common, cwd=tmp)
            res.check("--dataset without the datasets library exits 2", proc.returncode == 2
                      and "datasets" in proc.stderr and not os.path.exists(os.path.join(tmp, "hub")), proc.stderr)
        check_hub(res, tmp, sources, common, n)

        # Bad input.
        def bad_file(name, lines):
            with open(os.path.join(tmp, name), "w") as f:
                f.write("\n".join(lines) + "\n")
            return name

        nonempty = os.path.join(tmp, "nonempty")
        os.mkdir(nonempty)
        open(os.path.join(nonempty, "x"), "w").close()
        cases = [
            ("a line that is not JSON", ["--jsonl", bad_file("b1.jsonl", ['{"text": "ok"}', "{oops"])],
             ["b1.jsonl:2", "not JSON"]),
            ("a row without the field", ["--jsonl", bad_file("b2.jsonl", ['{"body": "x"}'])],
             ["b2.jsonl:1", "'text'"]),
            ("a text that is not a string", ["--jsonl", bad_file("b3.jsonl", ['{"text": 5}'])],
             ["b3.jsonl:1", "not a string"]),
            ("only empty documents", ["--jsonl", bad_file("b4.jsonl", ['{"text": ""}'])], ["no document"]),
            ("a missing source file", ["--jsonl", "absent.jsonl"], ["--jsonl", "absent.jsonl"]),
            ("two sources", ["--jsonl", sources[0], "--parquet", "x.parquet"], ["one source"]),
            ("--max-docs 0", ["--jsonl", sources[0], "--max-docs", "0"], ["--max-docs"]),
            ("--max-tokens -5", ["--jsonl", sources[0], "--max-tokens", "-5"], ["--max-tokens"]),
            ("--max-tokens 3X", ["--jsonl", sources[0], "--max-tokens", "3X"], ["--max-tokens", "3X"]),
            ("a non-empty --out", ["--jsonl", sources[0], "--out", "nonempty"], ["--out", "nonempty"]),
            ("a missing tokenizer", ["--jsonl", sources[0], "--tokenizer", "absent.model"],
             ["--tokenizer", "absent.model"]),
            ("a missing ratplus", ["--jsonl", sources[0], "--ratplus", "absent-binary"], ["--ratplus"]),
            ("an unknown option", ["--jsonl", sources[0], "--max-doc", "3"], ["unrecognized"]),
        ]
        for label, args, expect in cases:
            defaults = {"--out": "bad_out", "--tokenizer": "sp.model", "--ratplus": binary}
            command = list(args)
            for option, value in defaults.items():
                if option not in command:
                    command += [option, value]
            proc = script(*command, cwd=tmp)
            res.check("bad input: %s exits 2" % label,
                      proc.returncode == 2 and all(e in proc.stderr for e in expect)
                      and "Traceback" not in proc.stderr and not os.path.exists(os.path.join(tmp, "bad_out"))
                      and no_temporary(tmp), "exit %d: %s" % (proc.returncode, proc.stderr))
    print("%d passed, %d failed" % (res.passed, res.failed))
    return 1 if res.failed else 0


if __name__ == "__main__":
    sys.exit(main())
