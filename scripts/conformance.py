#!/usr/bin/env python3
"""Score ustgt against libiscsi's conformance suite (iscsi-test-cu) on one scratch LUN.

    scripts/conformance.py [--tests PATTERN] [--expect FILE] [--json FILE] [--timeout S]
                           [--allow-sanitize] [--multipath] URL

Every test iscsi-test-cu runs is classed as pass (passed without a [SKIPPED] note), skip
(passed only by skipping) or fail (an assertion failed, or the test never finished because the
target hung or dropped the session). Prints the tests that did not pass, then a closing line
'conformance: N passed, N failed, N skipped'. With --expect, every test named in FILE (one
SUITE.Test a line, '#' starts a comment) must pass, or the exit status is 1.
The LUN is overwritten: destructive tests run. --allow-sanitize passes the suite's own
--allow-sanitize flag, so the Sanitize tests run (they erase the whole LUN). --multipath gives
the suite the URL twice, so the MultipathIO tests run over two sessions (two I_T nexuses) to the
same LUN.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys


def classify(output):
    """Map iscsi-test-cu's verbose output to {test: {"class": ..., "notes": [...]}}."""
    tests, suite, current = {}, None, None
    for raw in output.splitlines():
        m = re.match(r"^Suite: (\S+)", raw)
        if m:
            suite = m.group(1)
            continue
        m = re.match(r"^  Test: (\S+) \.\.\.(.*)$", raw)
        if m:
            current = f"{suite}.{m.group(1)}"
            tests[current] = {"class": None, "notes": []}
            raw = m.group(2)
        if current is None:
            continue
        entry, text = tests[current], raw.strip()
        if any(tag in text for tag in ("[SKIPPED]", "[FAILED]")) or text.startswith("[WARNING]"):
            entry["notes"].append(text[:300])
        if text.endswith("passed"):
            skipped = any("[SKIPPED]" in n for n in entry["notes"])
            entry["class"] = "skip" if skipped else "pass"
            current = None
        elif text.endswith("FAILED") or "...FAILED" in text:
            entry["class"] = "fail"
            current = None
    for entry in tests.values():
        if entry["class"] is None:
            entry["class"] = "fail"
            entry["notes"].append("never finished: the target hung, crashed or dropped the session")
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--tests", default="ALL")
    ap.add_argument("--expect")
    ap.add_argument("--json")
    ap.add_argument("--timeout", type=int, default=1500)
    ap.add_argument("--allow-sanitize", action="store_true",
                    help="let the suite run the SANITIZE tests (iscsi-test-cu --allow-sanitize)")
    ap.add_argument("--multipath", action="store_true",
                    help="give iscsi-test-cu the URL twice: two paths (sessions) to the LUN")
    args = ap.parse_args()
    if not shutil.which("iscsi-test-cu"):
        sys.exit("conformance: iscsi-test-cu not found (install Debian's libiscsi-bin)")
    cmd = ["iscsi-test-cu", "-d", "-v", "-t", args.tests]
    if args.allow_sanitize:
        cmd.append("--allow-sanitize")
    cmd.append(args.url)
    if args.multipath:
        cmd.append(args.url)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                             timeout=args.timeout).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += "\n<timed out>\n"
    tests = classify(out)
    if not tests:
        sys.stderr.write(out[-3000:])
        sys.exit(f"conformance: no test ran (could iscsi-test-cu log in to {args.url}?)")
    counts = {c: sum(1 for t in tests.values() if t["class"] == c) for c in ("pass", "fail", "skip")}
    for name, t in sorted(tests.items()):
        if t["class"] != "pass":
            print(f"{t['class'].upper():4} {name}: {' | '.join(t['notes'][:2])}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"counts": counts, "tests": tests}, f, indent=1, sort_keys=True)
    status = 0
    if args.expect:
        with open(args.expect) as f:
            wanted = [line.split("#")[0].strip() for line in f]
        for name in (w for w in wanted if w):
            got = tests.get(name, {}).get("class", "not run")
            if got != "pass":
                print(f"REGRESSION {name}: expected to pass, got {got}")
                status = 1
    print(f"conformance: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    sys.exit(status)


if __name__ == "__main__":
    main()
