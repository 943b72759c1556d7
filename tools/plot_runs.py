#!/usr/bin/env python3
"""Figures of ratplus runs as PNG files, drawn with matplotlib (Debian: python3-matplotlib).

Usage:
  plot_runs.py curves --out loss.png RUN.jsonl [RUN.jsonl ...] [--label NAME ...] [--x step|tokens]
                      [--title TEXT]
  plot_runs.py bars --out bars.png TABLE.json [--title TEXT]

curves: the loss curves of one or more runs from their `train.metrics_jsonl` files, on one figure.
  Every update record {"step", "pass", "loss", ..., "tokens", "time"} is a point of its run's curve for
  its pass; each run has its own colour, each pass its own line style (dense solid, sparse dashed,
  adapt dotted). Every validation record {"step", "tokens", "validation": {PATTERN: loss}, "time"} is
  marked with a point per pattern (a marker shape per pattern) in the run's colour. A run's label is
  its --label (one per run, in order) or else its path as given without the extension. --x tokens puts the
  tokens seen on the horizontal axis instead of the step.
bars: a grouped bar chart of {"rows": [{"model": NAME, "pattern": PATTERN, "loss": X}, ...]}: one
  group per pattern, one bar per model, in the order they first appear.

Exit codes: 0 done, 2 bad input (the message names the file and line, or the option), 1 an I/O
failure. The PNG is written to a temporary file beside --out and renamed when complete, so a failure
leaves no partial figure.
"""

import argparse
import json
import math
import os
import sys
import tempfile

PASS_STYLES = {"dense": "-", "sparse": "--", "adapt": ":"}
VALIDATION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


class InputError(Exception):
    """Bad input: the message names the file and line, or the option."""


def _number(value, where, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError('%s: "%s" is not a finite number (%r)' % (where, key, value))
    return float(value)


def _json(text, where):
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InputError("%s: not valid JSON (%s)" % (where, exc)) from None


def _read_text(path):
    """The whole of an input file; a file that cannot be read or is not UTF-8 is bad input."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise InputError("%s: cannot be read (%s)" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:
        raise InputError("%s: not UTF-8 text (byte %d)" % (path, exc.start)) from None


def read_run(path, x_key):
    """{"updates": {pass: [(x, loss)]}, "validation": {pattern: [(x, loss)]}} of one metrics file."""
    updates, validation = {}, {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = "%s:%d" % (path, number)
        record = _json(line, where)
        if not isinstance(record, dict):
            raise InputError("%s: not a JSON object" % where)
        if "validation" in record:
            losses = record["validation"]
            if not isinstance(losses, dict) or not losses:
                raise InputError('%s: "validation" is not an object of pattern losses' % where)
            for key in ("step", "tokens"):
                if key not in record:
                    raise InputError('%s: a validation record without "%s"' % (where, key))
            x = _number(record[x_key], where, x_key)
            for pattern, loss in losses.items():
                validation.setdefault(pattern, []).append((x, _number(loss, where, pattern)))
        elif "pass" in record:
            for key in ("step", "loss", "tokens"):
                if key not in record:
                    raise InputError('%s: an update record without "%s"' % (where, key))
            if record["pass"] not in PASS_STYLES:
                raise InputError('%s: "pass" is %r, not one of %s' % (where, record["pass"], ", ".join(PASS_STYLES)))
            x = _number(record[x_key], where, x_key)
            updates.setdefault(record["pass"], []).append((x, _number(record["loss"], where, "loss")))
        else:
            raise InputError('%s: neither an update ("pass") nor a validation ("validation") record' % where)
    if not updates and not validation:
        raise InputError("%s: holds no records" % path)
    return {"updates": updates, "validation": validation}


def read_table(path):
    """[(model, pattern, loss)] of a JSON table {"rows": [{"model", "pattern", "loss"}, ...]}."""
    table = _json(_read_text(path), path)
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list) or not table["rows"]:
        raise InputError('%s: not an object with a non-empty "rows" list' % path)
    rows = []
    for i, row in enumerate(table["rows"]):
        where = "%s: rows[%d]" % (path, i)
        if not isinstance(row, dict):
            raise InputError("%s: not an object" % where)
        for key in ("model", "pattern"):
            if not isinstance(row.get(key), str):
                raise InputError('%s: "%s" is missing or not a string' % (where, key))
        if "loss" not in row:
            raise InputError('%s: no "loss"' % where)
        rows.append((row["model"], row["pattern"], _number(row["loss"], where, "loss")))
    seen = set()
    for model, pattern, _ in rows:
        if (model, pattern) in seen:
            raise InputError("%s: model %r and pattern %r appear twice" % (path, model, pattern))
        seen.add((model, pattern))
    return rows


def draw_curves(plt, runs, labels, x_key, title):
    figure, axes = plt.subplots(figsize=(9, 5.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = {}
    for i, (run, label) in enumerate(zip(runs, labels)):
        colour = colours[i % len(colours)]
        for name, points in run["updates"].items():
            xs, ys = zip(*points)
            axes.plot(xs, ys, PASS_STYLES[name], color=colour, linewidth=1.2, label="%s %s" % (label, name))
        for pattern, points in run["validation"].items():
            marker = markers.setdefault(pattern, VALIDATION_MARKERS[len(markers) % len(VALIDATION_MARKERS)])
            xs, ys = zip(*points)
            axes.plot(xs, ys, linestyle="none", marker=marker, color=colour, markeredgecolor="black",
                      markersize=6, label="%s validation %s" % (label, pattern))
    axes.set_xlabel("tokens" if x_key == "tokens" else "step")
    axes.set_ylabel("loss")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title(title or "loss")
    return figure


def draw_bars(plt, rows, title):
    patterns, models = [], []
    for model, pattern, _ in rows:
        if pattern not in patterns:
            patterns.append(pattern)
        if model not in models:
            models.append(model)
    loss = {(model, pattern): value for model, pattern, value in rows}
    figure, axes = plt.subplots(figsize=(max(6, 1.2 * len(patterns) * max(1, len(models)) / 2), 5))
    width = 0.8 / len(models)
    for m, model in enumerate(models):
        xs = [p + (m - (len(models) - 1) / 2) * width for p, pattern in enumerate(patterns)
              if (model, pattern) in loss]
        ys = [loss[(model, pattern)] for pattern in patterns if (model, pattern) in loss]
        axes.bar(xs, ys, width, label=model)
    axes.set_xticks(range(len(patterns)))
    axes.set_xticklabels(patterns, rotation=20, ha="right")
    axes.set_ylabel("loss")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize="small")
    axes.set_title(title or "loss by pattern")
    figure.tight_layout()
    return figure


def save_png(figure, out):
    """Writes the figure to a temporary file beside `out`, then renames it."""
    folder = os.path.dirname(os.path.abspath(out))
    handle, temporary = tempfile.mkstemp(prefix=".plot_runs_", suffix=".png", dir=folder)
    os.close(handle)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        figure.savefig(temporary, format="png", dpi=120)
        os.replace(temporary, out)
    except BaseException:
        os.unlink(temporary)
        raise


def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Loss curves and bar charts of ratplus runs as PNG.")
    commands = parser.add_subparsers(dest="command", required=True)
    curves = commands.add_parser("curves", help="loss curves from train.metrics_jsonl files")
    curves.add_argument("runs", nargs="+", metavar="RUN.jsonl")
    curves.add_argument("--label", action="append", default=[], help="a run's name in the legend, one per run")
    curves.add_argument("--x", choices=("step", "tokens"), default="step", help="the horizontal axis")
    bars = commands.add_parser("bars", help="a grouped bar chart of losses per model and pattern")
    bars.add_argument("table", metavar="TABLE.json")
    for command in (curves, bars):
        command.add_argument("--out", required=True, help="the PNG file to write")
        command.add_argument("--title", default="", help="the figure's title")
    return parser.parse_args(argv)


def run(args):
    if not args.out.lower().endswith(".png"):
        raise InputError("--out %s: the figure is a PNG, its name must end in .png" % args.out)
    if args.command == "curves":
        if args.label and len(args.label) != len(args.runs):
            raise InputError("--label given %d times for %d runs" % (len(args.label), len(args.runs)))
        runs = [read_run(path, args.x) for path in args.runs]
        labels = args.label or [os.path.splitext(path)[0] for path in args.runs]
    else:
        rows = read_table(args.table)
    try:
        import matplotlib
    except ImportError:
        raise InputError("plot_runs needs matplotlib (Debian: python3-matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if args.command == "curves":
        figure = draw_curves(plt, runs, labels, args.x, args.title)
    else:
        figure = draw_bars(plt, rows, args.title)
    save_png(figure, args.out)
    plt.close(figure)
    return 0


def main(argv=None):
    args = parse_arguments(argv)
    try:
        return run(args)
    except InputError as exc:
        print("plot_runs: %s" % exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print("plot_runs: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
