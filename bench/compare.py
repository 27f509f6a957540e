#!/usr/bin/env python3
"""This tree's libwebhook against another commit's, on the same bench program: builds the
library of REF (a commit, unpacked with git archive into a temporary directory, or a source
tree given as a path), links this tree's bench/bench.c against it, then runs the two bench
programs in turn, ROUNDS times each (old new, new old, old new, ...: drift on a shared
machine hits both alike), and prints every figure of every round with the ratio new/old of
each pair, then the min, median and max of those ratios. Run after `make build/bench/bench`;
loopback only, as make bench.

usage: bench/compare.py REF [--rounds N] [--only SCENARIOS] [--events N] [--keep DIR]
  default: --rounds 5 --only throughput,durable,durable_emit,engines
  --keep DIR: the bench program built against REF is also left in DIR as DIR/bench (for a
  profile: BENCH=/abs/DIR/bench bench/profile.sh durable 200000)

The figures are each table row's first number ("events/s" and the like), its CPU per event
where it gives one and its ratio to its own baseline; the engines row also gives its
duplicates and missing events, and its one-engine baseline as a row of its own.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def pkg(flag, names):
    return subprocess.run(["pkg-config", flag] + names, check=True, capture_output=True,
                          text=True).stdout.split()


# what the Makefile's BENCH_SUPPORT links into the bench besides bench.c
BENCH_SUPPORT = ["tests/support/pki.c", "tests/support/pg.c", "bench/bare_curl.c"]


def build_old(ref, tmp):
    """The bench program of this tree linked against REF's library; its path."""
    if os.path.isdir(ref):
        tree = os.path.abspath(ref)
    else:
        tree = os.path.join(tmp, "tree")
        os.mkdir(tree)
        archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True,
                                 capture_output=True).stdout
        sh(["tar", "-x", "-C", tree], input=archive)
    sh(["make", "-s", "-C", tree, "-j2", "lib/libwebhook.a"], stdout=subprocess.DEVNULL)
    os.mkdir(os.path.join(tmp, "old"))
    out = os.path.join(tmp, "old", "bench")  # named bench: profile.sh keeps that command's samples
    deps = ["libcurl", "libcrypto", "libcjson", "sqlite3", "libmicrohttpd"]
    if subprocess.run(["pkg-config", "--exists", "libpq"]).returncode == 0:
        deps.append("libpq")  # the PostgreSQL store, in the commits that have it
    sh(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-O2", "-g",
        "-I" + os.path.join(tree, "include"), "-I" + os.path.join(ROOT, "tests/support")]
       + pkg("--cflags", deps)
       + ["-o", out, os.path.join(ROOT, "bench/bench.c")]
       + [os.path.join(ROOT, f) for f in BENCH_SUPPORT]
       + [os.path.join(tree, "lib/libwebhook.a")]
       + pkg("--libs", deps) + ["-lpthread", "-lm"])
    return out


def figures(table):
    """{figure name: value} from the bench's table on stdout."""
    out = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or cells[0] in ("scenario", "") or cells[0].startswith("-"):
            continue
        name, result, baseline = cells[0], cells[1], cells[2]
        m = re.match(r"([\d,]+(?:\.\d+)?) ([A-Za-z/]+)", result)
        if m:
            out[name + ": " + m.group(2)] = float(m.group(1).replace(",", ""))
        m = re.search(r"(\d+) dups?, (\d+) missing", result)
        if m:
            out[name + ": duplicates"] = float(m.group(1))
            out[name + ": missing"] = float(m.group(2))
        m = re.search(r"([\d.]+) us CPU", result)
        if m:
            out[name + ": us CPU per event"] = float(m.group(1))
        if re.fullmatch(r"[\d.]+x", cells[3]):
            out[name + ": ratio to its baseline"] = float(cells[3][:-1])
        m = re.match(r"1 engine ([\d,]+) events/s, ([\d.]+) us CPU", baseline)
        if m:
            out["1 engine, 1 sqlite file: events/s"] = float(m.group(1).replace(",", ""))
            out["1 engine, 1 sqlite file: us CPU per event"] = float(m.group(2))
    return out


def run(binary, args):
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    p = subprocess.run([binary, "--dir", os.path.join(ROOT, "bench"), "--no-json"] + args,
                       capture_output=True, text=True, env=env, cwd=ROOT)
    if p.returncode != 0:
        sys.stderr.write(p.stderr[-2000:] + p.stdout[-2000:])
        sys.exit("compare.py: %s failed" % binary)
    return figures(p.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ref")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", default="throughput,durable,durable_emit,engines")
    ap.add_argument("--events", type=int)
    ap.add_argument("--keep")
    a = ap.parse_args()
    new = os.path.join(ROOT, "build/bench/bench")
    if not os.access(new, os.X_OK):
        sys.exit("compare.py: run make build/bench/bench first")
    args = ["--only", a.only, "--no-baseline"] + (["--events", str(a.events)] if a.events else [])
    tmp = tempfile.mkdtemp(prefix="webhook-compare.")
    try:
        old = build_old(a.ref, tmp)
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            shutil.copy2(old, os.path.join(a.keep, "bench"))
        ratios = {}
        for r in range(a.rounds):
            order = [("old", old), ("new", new)] if r % 2 == 0 else [("new", new), ("old", old)]
            got = {}
            for name, binary in order:
                got[name] = run(binary, args)
            print("round %d (%s first):" % (r + 1, order[0][0]))
            for k in sorted(got["new"]):
                o, n = got["old"].get(k), got["new"][k]
                x = n / o if o else (1.0 if n == o else float("inf"))
                ratios.setdefault(k, []).append(x)
                print("  %-50s old %10.2f  new %10.2f  new/old %.3f" % (k, o or 0, n, x))
            sys.stdout.flush()
        print("\nnew/old over %d rounds (min, median, max):" % a.rounds)
        for k, xs in sorted(ratios.items()):
            print("  %-50s %.3f  %.3f  %.3f" % (k, min(xs), statistics.median(xs), max(xs)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
