#!/usr/bin/env python3
"""Where the time of a bench run goes, from `perf script -F comm,time,ip,sym,dso` on stdin
(cpu-clock samples with DWARF call graphs; bench/profile.sh makes them).

Prints two splits of the samples taken while libwebhook delivered (between the first and the
last sample under poll_core or wh_emit):

  by component: the kernel, libcurl, OpenSSL, cJSON, SQLite, libwebhook's own code and the
  bench harness; a sample in libc (malloc, memcpy, printf...) counts for the library that
  called libc, so "libcurl" includes the allocations libcurl makes.

  kernel time by entry: the syscall (or fault, interrupt) each kernel sample came in by.

  by stage: which part of libwebhook the sample was under (innermost match wins), user and
  kernel time apart.

usage: perf script ... | bench/perf_split.py bench/bench.c
"""
import re
import sys
from collections import Counter

# innermost frame first: the first of these found walking from the leaf names the stage
STAGES = [
    ("wh__payload_build", "emit: JSON body (checks, cJSON)"),
    ("wh__new_id", "emit: event id (RAND_bytes)"),
    ("wh__deliveries_commit", "emit: SQLite commit"),
    ("wh_emit", "emit: rest (locks, deliveries)"),
    ("wh__sign_key", "dispatch: HMAC signature"),
    ("tr_submit", "dispatch: curl handle setup"),
    ("dispatch", "dispatch: rest"),
    ("finish", "completion: curl"),
    ("on_done", "completion: verdict, log record"),
    ("tr_perform", "libcurl multi: HTTP and sockets"),
    ("wh__commit_results", "store: results commit"),
    ("prune", "store: retention (prune)"),
    ("checkpoint", "store: checkpoint"),
    ("wh__sync_endpoints", "store: endpoint sync"),
    ("claim", "store: claims"),
    ("heartbeat", "store: lease"),
    ("wh__store_upkeep", "store: upkeep, the rest"),
    ("wh__flush_records", "log: sinks and ring"),
    ("poll_core", "drive loop: epoll, eventfd, timers"),
    ("wh_poll", "drive loop: epoll, eventfd, timers"),
    ("wh_stats", "bench harness"),
]
STAGE_OF = dict(STAGES)
WINDOW_MARKS = {"poll_core", "wh_emit"}
PASS_THROUGH = ("libc.so", "[vdso]", "ld-linux", "libpthread", "[unknown]")


def kernel_entry(frames, user):
    """The syscall (or fault, interrupt) a kernel sample came in by."""
    for sym, _, k in frames:
        if k and sym.startswith("__x64_sys_"):
            return sym[len("__x64_sys_"):]
    for sym, _, k in frames:
        if k and ("page_fault" in sym or sym.startswith("asm_sysvec")):
            return "page fault" if "page_fault" in sym else "interrupt"
    if user:  # the libc wrapper it came from, e.g. __GI___poll
        name = re.sub(r"^(__GI_)?_*(libc_)?", "", user[0][0])
        return {"send": "sendto", "recv": "recvfrom"}.get(name, name) or "other"
    return "other"


def component(dso, sym, harness):
    if "libcurl" in dso:
        return "libcurl"
    if "libcrypto" in dso or "libssl" in dso:
        return "OpenSSL"
    if "libcjson" in dso:
        return "cJSON"
    if "libsqlite3" in dso:
        return "SQLite"
    if dso.endswith("/bench") or dso == "bench":
        return "bench harness" if sym in harness else "libwebhook"
    return "other: " + dso.rsplit("/", 1)[-1]


def main():
    src = open(sys.argv[1]).read() if len(sys.argv) > 1 else ""
    harness = set(re.findall(r"^(?:static\s+)?[\w\s\*]+?\b(\w+)\([^;]*$", src, re.M)) - {"if", "for", "while"}
    samples = []  # (time, frames: [(sym, dso)] leaf first)
    cur = None
    for line in sys.stdin:
        if not line.strip():
            continue
        if not line[0].isspace():
            m = re.match(r"^(\S+)\s+([\d.]+):", line)
            cur = None
            if m and m.group(1) == "bench":
                cur = (float(m.group(2)), [])
                samples.append(cur)
            continue
        if cur is None:
            continue
        m = re.match(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$", line)
        if m:
            ip, sym, dso = m.groups()
            sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
            cur[1].append((sym, dso, ip.startswith("ffffffff")))
    marked = [t for t, fr in samples if any(s in WINDOW_MARKS for s, _, _ in fr)]
    if not marked:
        sys.exit("perf_split: no sample under poll_core or wh_emit")
    lo, hi = min(marked), max(marked)
    comp, stage_user, stage_kernel, syscalls = Counter(), Counter(), Counter(), Counter()
    n = 0
    for t, frames in samples:
        if not (lo <= t <= hi) or not frames:
            continue
        n += 1
        in_kernel = frames[0][2]
        user = [f for f in frames if not f[2]]
        if in_kernel:
            comp["kernel"] += 1
            syscalls[kernel_entry(frames, user)] += 1
        else:
            for sym, dso, _ in user:
                if dso == "inlined" or any(p in dso for p in PASS_THROUGH):
                    continue
                comp[component(dso, sym, harness)] += 1
                break
            else:
                comp["libc, caller unknown"] += 1
        stage = next((STAGE_OF[s] for s, _, _ in user if s in STAGE_OF), None)
        if stage is None:
            stage = "bench harness" if any(s in harness for s, _, _ in user) else (
                "unknown (stack not unwound)")
        (stage_kernel if in_kernel else stage_user)[stage] += 1
    print(f"{n} samples while delivering ({hi - lo:.1f} s)\n")
    print("| component | share |")
    print("|---|---:|")
    for k, v in comp.most_common():
        print(f"| {k} | {100 * v / n:.1f}% |")
    print("\n| kernel time by entry (syscall, fault or interrupt) | share of all |")
    print("|---|---:|")
    for k, v in syscalls.most_common(12):
        print(f"| {k} | {100 * v / n:.1f}% |")
    print("\n| stage | user | kernel | total |")
    print("|---|---:|---:|---:|")
    stages = Counter(stage_user) + Counter(stage_kernel)
    for k, v in stages.most_common():
        print(f"| {k} | {100 * stage_user[k] / n:.1f}% | {100 * stage_kernel[k] / n:.1f}% | {100 * v / n:.1f}% |")


if __name__ == "__main__":
    main()
