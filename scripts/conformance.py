#!/usr/bin/env python3
"""Score ustgt against libiscsi's conformance suite (iscsi-test-cu) on one scratch LUN.

    scripts/conformance.py [--tests PATTERN] [--exclude FILE] [--expect FILE] [--json FILE]
                           [--timeout S] [--allow-sanitize] [--multipath | --url2 URL2] URL

Every test iscsi-test-cu runs is classed as pass (passed without a [SKIPPED] note), skip
(passed only by skipping) or fail (an assertion failed, or the test never finished because the
target hung or dropped the session). The verdict is CUnit's own ("passed" or "FAILED" right after
the test's output); anything the suite logs after it (its per-test teardown) is kept as a note
but does not change the verdict. Prints the tests that did not pass, then a closing line
'conformance: N passed, N failed, N skipped'. With --expect, every test named in FILE (one
SUITE.Test a line, '#' starts a comment) must pass, or the exit status is 1. --exclude FILE
(same format) names tests that are not run at all (the configuration makes them inapplicable).
The LUN is overwritten: destructive tests run. --allow-sanitize passes the suite's own
--allow-sanitize flag, so the Sanitize tests run (they erase the whole LUN). --url2 gives the
suite a second path to the same LUN (another portal), so the MultipathIO tests run over two
sessions (two I_T nexuses); --multipath gives it the URL twice instead.
"""
import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def classify(output):
    """Map iscsi-test-cu's verbose output to {test: {"class": ..., "notes": [...]}}."""
    tests, suite, current = {}, None, None
    for raw in output.splitlines():
        m = re.match(r"^Suite: (\S+)", raw)
        if m:
            suite, current = m.group(1), None
            continue
        m = re.match(r"^  Test: (\S+) \.\.\.(.*)$", raw)
        if m:
            current = f"{suite}.{m.group(1)}"
            tests[current] = {"class": None, "notes": []}
            raw = m.group(2)
        if current is None:
            continue
        entry = tests[current]
        # CUnit writes its verdict unindented, right after the test's own (indented) output.
        verdict = re.match(r"^(passed|FAILED)(.*)$", raw)
        if entry["class"] is None and verdict:
            skipped = any("[SKIPPED]" in n for n in entry["notes"])
            if verdict.group(1) == "FAILED":
                entry["class"] = "fail"
            else:
                entry["class"] = "skip" if skipped else "pass"
            after = verdict.group(2).strip()
            if after:
                entry["notes"].append(f"after the test: {after[:280]}")
            continue
        text = raw.strip()
        if entry["class"] == "fail" and re.match(r"^\d+\. \S+:\d+", text):
            entry["notes"].append(text[:300])  # CUnit's list of failed assertions
        elif any(tag in text for tag in ("[SKIPPED]", "[FAILED]")) or text.startswith("[WARNING]"):
            entry["notes"].append(text[:300])
    for entry in tests.values():
        if entry["class"] is None:
            entry["class"] = "fail"
            entry["notes"].append("never finished: the target hung, crashed or dropped the session")
    return tests


def read_names(path):
    """Test names (SUITE.Test) of a list file, '#' starting a comment."""
    with open(path) as f:
        return [n for n in (line.split("#")[0].strip() for line in f) if n]


def selection(pattern, excluded, workdir):
    """The -t argument running the tests PATTERN selects except `excluded`: PATTERN itself when
    nothing is excluded, else a file naming whole suites where possible (so that each suite
    still runs its tests in one set of sessions) and single tests elsewhere."""
    if not excluded:
        return pattern
    listed = subprocess.run(["iscsi-test-cu", "-l"], capture_output=True, text=True).stdout
    parts = (pattern.split(".") + ["*", "*"])[:3]
    chosen = []
    for line in listed.splitlines():
        names = line.strip().split(".")
        if len(names) == 3 and names[0] == "ALL" and all(
                fnmatch.fnmatchcase(n, p) for n, p in zip(names, parts)):
            chosen.append((names[1], names[2]))
    lines = []
    for suite in dict.fromkeys(s for s, _ in chosen):
        tests = [t for s, t in chosen if s == suite]
        keep = [t for t in tests if f"{suite}.{t}" not in excluded]
        if len(keep) == len(tests):
            lines.append(f"ALL.{suite}")
        else:
            lines.extend(f"ALL.{suite}.{t}" for t in keep)
    path = os.path.join(workdir, "tests.txt")
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def run_suite(args, tests):
    """Runs iscsi-test-cu on the tests `tests` (a -t argument) and returns its output."""
    cmd = ["iscsi-test-cu", "-d", "-v", "-t", tests]
    if args.allow_sanitize:
        cmd.append("--allow-sanitize")
    cmd.append(args.url)
    if args.url2 or args.multipath:
        cmd.append(args.url2 or args.url)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, errors="replace",
                              timeout=args.timeout).stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return out + "\n<timed out>\n"


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
    ap.add_argument("--url2", help="a second path to the same LUN (another portal)")
    ap.add_argument("--exclude", help="a list of tests not to run (inapplicable here)")
    args = ap.parse_args()
    if not shutil.which("iscsi-test-cu"):
        sys.exit("conformance: iscsi-test-cu not found (install Debian's libiscsi-bin)")
    excluded = set(read_names(args.exclude)) if args.exclude else set()
    with tempfile.TemporaryDirectory(prefix="conformance-") as work:
        out = run_suite(args, selection(args.tests, excluded, work))
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
        for name in read_names(args.expect):
            got = tests.get(name, {}).get("class", "not run")
            if got != "pass":
                print(f"REGRESSION {name}: expected to pass, got {got}")
                status = 1
    print(f"conformance: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    sys.exit(status)


if __name__ == "__main__":
    main()
