"""The tools that show a plan to people and scripts (docs/inspect.md):
  - `ferry inspect` prints the summary, the options and the fingerprints;
  - `--json` carries the same numbers (layers, regions, policy, budget);
  - `--trace` is a Chrome trace: X events on the compute and copy tracks,
    counters of bytes per region, no negative times;
  - `--svg` is well-formed SVG with the lanes and the occupancy curve, and
    stays small for an 80-layer model;
  - `ferry diff` names the layers and the budget that changed; --quiet
    answers with its exit status;
  - corrupted plans fail with exit 1 and a message, never a crash.
Run against the tiny preset compiled twice: for demo (every layer resident)
and for a budget that makes every layer stream."""
import json
import os
import random
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

FERRY = os.environ.get("FERRY", "ferry")
TMP = os.environ.get("FERRY_TMP", "/tmp/ferry_test_inspect")
SVG_LIMIT = 2 * 1024 * 1024  # bytes: a picture to open in a browser, not a data dump
STREAM_BUDGET = 2200000      # tiny preset: embedding and head resident, every layer streamed

failures = 0


def check(cond, what):
    global failures
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        failures += 1


def run(*args):
    """Exit status, stdout and stderr (as bytes decoded leniently: a corrupted
    plan may carry any bytes in its strings)."""
    r = subprocess.run([FERRY] + [str(a) for a in args], capture_output=True)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def must(*args):
    code, out, err = run(*args)
    if code != 0:
        print("ferry", " ".join(map(str, args)), "failed:\n", out, err, file=sys.stderr)
        sys.exit(1)
    return out


def path(name):
    return os.path.join(TMP, name)


def check_summary(plan):
    out = must("inspect", plan)
    for line in ("plan      format 1, compiled by ferry", "options   policy ferry", "target    demo:",
                 "memory map (device bytes", "placement prefill: ", "model.layers.3", "request (prefill + decode):",
                 "(the times recorded in the plan agree)", "kernels   spirv vulkan1.1 ("):
        check(line in out, f"inspect summary has '{line}'")
    kernels = must("inspect", plan, "--kernels")
    check("spirv vulkan1.1:" in kernels and "fy_matmul_" in kernels,
          "--kernels lists the plan's SPIR-V kernels (a demo plan targets spirv)")


def check_json(plan, streamed):
    doc = json.loads(must("inspect", plan, "--json"))
    check(doc["model"]["n_layers"] == 4 and len(doc["layers"]) == 4, "json: 4 layers")
    check(doc["policy"] == "ferry" and doc["options"]["policy"] == "ferry", "json: policy ferry")
    check(doc["target"]["name"] == "demo", "json: target demo")
    regions = doc["regions"]
    check([r["name"] for r in regions] == ["resident", "slots", "kv", "activations"], "json: the four regions")
    end = max(r["offset"] + r["bytes"] for r in regions)
    check(end == doc["device_bytes"] and sum(r["bytes"] for r in regions) == doc["device_bytes"],
          f"json: regions sum to device_bytes {doc['device_bytes']}")
    check(doc["device_bytes"] <= doc["budget"], "json: device_bytes within the budget")
    rows = doc["layers"] + [doc["global_weights"]]
    weights = sum(r["resident_bytes"] + r["streamed_bytes"] for r in rows)
    check(weights == doc["model"]["weight_bytes"], "json: per-layer bytes sum to the model's weights")
    wheres = {l["stages"]["decode"]["where"] for l in doc["layers"]}
    check(wheres == {"streamed" if streamed else "resident"}, f"json: layers {wheres}, streamed={streamed}")
    check(all(l["streamed_bytes"] > 0 for l in doc["layers"]) == streamed, "json: streamed bytes per layer")
    stages = {s["name"]: s for s in doc["stages"]}
    check(set(stages) == {"load", "prefill", "decode"}, "json: load, prefill, decode")
    decode = stages["decode"]
    check(decode["repeat"] == 128, "json: 128 decode steps")
    check(abs(decode["recorded"]["step_seconds"] - decode["simulated"]["step_seconds"]) < 1e-12,
          "json: recorded and simulated decode step agree")
    request = sum(s["simulated"]["total_seconds"] for s in doc["stages"] if s["name"] != "load")
    check(abs(doc["predicted"]["request_seconds"] - request) < 1e-9, "json: request = prefill + decode")
    check([(k["format"], k["architecture"]) for k in doc["kernels"]] == [("spirv", "vulkan1.1")]
          and doc["kernels"][0]["code_bytes"] > 0 and doc["kernels"][0]["entries"],
          "json: the SPIR-V kernel table")
    check(doc["options"]["extra"].get("generate") == "128", "json: the free-form options")
    return doc


def check_trace(plan):
    trace = path("trace.json")
    must("inspect", plan, "--trace", trace)
    with open(trace) as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    counters = [e for e in events if e["ph"] == "C"]
    check({e["tid"] for e in spans} == {0, 1}, "trace: X events on the compute and the copy track")
    check(all(e["ts"] >= 0 and e["dur"] >= 0 for e in spans), "trace: no negative ts or dur")
    check({e["cat"] for e in spans} == {"load", "prefill", "decode"}, "trace: every stage")
    check(counters and all(set(e["args"]) == {"resident", "slots", "kv", "activations"} for e in counters),
          "trace: counters of bytes per region")
    check(max(e["args"]["slots"] for e in counters) > 0, "trace: slot bytes rise while layers stream")
    steps = {e["args"]["step"] for e in spans if e["cat"] == "decode"}
    check(steps == {0, 1, 2}, f"trace: the first 3 decode steps, got {sorted(steps)}")
    # Stages follow one another: prefill starts after the load ends.
    load_end = max(e["ts"] + e["dur"] for e in spans if e["cat"] == "load")
    check(min(e["ts"] for e in spans if e["cat"] == "prefill") >= load_end - 1e-3, "trace: one clock")


def check_svg(plan, out, limit=SVG_LIMIT):
    must("inspect", plan, "--svg", out)
    size = os.path.getsize(out)
    check(size < limit, f"svg {out}: {size} bytes < {limit}")
    root = ET.parse(out).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    check(root.tag == ns + "svg", "svg: root element")
    lanes = [r for r in root.iter(ns + "rect") if r.get("class") == "lane"]
    check(len(lanes) == 8, f"svg: copy, compute, slots and VRAM lanes in 2 panels, got {len(lanes)}")
    check(any(p.get("class") == "o1" for p in root.iter(ns + "path")), "svg: the slots occupancy path")
    texts = " ".join(t.text or "" for t in root.iter(ns + "text"))
    for words in ("prefill", "decode", "copy", "compute", "step 1", "policy ferry", "budget"):
        check(words in texts, f"svg: says '{words}'")
    return out


def render(svg):
    """The SVG as PNG where a renderer is at hand (rsvg-convert, or cairosvg)."""
    png = os.path.splitext(svg)[0] + ".png"
    if shutil.which("rsvg-convert"):
        r = subprocess.run(["rsvg-convert", svg, "-o", png], capture_output=True, text=True)
        check(r.returncode == 0 and os.path.getsize(png) > 0, f"rsvg-convert renders {svg}: {r.stderr}")
        return
    try:
        import cairosvg
    except ImportError:
        print("SKIP: rendering the SVG (neither rsvg-convert nor cairosvg)")
        return
    cairosvg.svg2png(url=svg, write_to=png)
    check(os.path.getsize(png) > 0, f"cairosvg renders {svg}")


def check_diff(a, b):
    code, out, _ = run("diff", a, b)
    check(code == 0, "diff is a report: exit 0")
    check("* budget" in out and "134.0 MiB" in out, "diff: the budget changed (demo: 150 MiB less 16 reserved)")
    check(all(f"* model.layers.{i} " in out for i in range(4)), "diff: the four layers are marked changed")
    for l in range(4):
        check(f"* model.layers.{l}" in out and "resident -> streamed" in out, f"diff: layer {l} now streams")
    check("model.layers.0" not in run("diff", a, a)[1], "diff of a plan with itself lists no layer")
    check("* request" in out and "B/A" in out, "diff: request times with a ratio")
    check("* --budget" in out and "2200000" in out, "diff: the option that changed")
    check(run("diff", "--quiet", a, b)[:2] == (1, ""), "diff --quiet: exit 1, silent, when they differ")
    check(run("diff", "--quiet", a, a)[0] == 0, "diff --quiet: exit 0 for the same plan")
    check("no differences" in run("diff", a, a)[1], "diff: no differences")


def check_corrupted(plan):
    with open(plan, "rb") as f:
        data = f.read()
    bad = path("bad.plan")

    def inspect_bytes(blob):
        with open(bad, "wb") as f:
            f.write(blob)
        return run("inspect", bad)

    for what, blob, words in (("truncated", data[: len(data) // 2], "past the end"),
                              ("cut to 8 bytes", data[:8], "plan"),
                              ("empty", b"", "not a ferry plan"),
                              ("identifier", data[:4] + b"XXXX" + data[8:], "not a ferry plan")):
        code, out, err = inspect_bytes(blob)
        check(code == 1 and err.startswith("ferry: error: " + bad) and words in err,
              f"{what}: exit 1 naming the problem, got {code}: {err.strip()}")
    code, _, err = run("inspect", path("missing.plan"))
    check(code == 1 and "missing.plan" in err, "a missing plan: exit 1 naming it")
    # Flipped bytes anywhere: rejected with a message, or (inside a string or a
    # float) accepted; never a crash. Every view reads the result.
    rng = random.Random(7)
    rejected = 0
    for i in range(150):
        blob = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            blob[rng.randrange(len(blob))] ^= rng.randint(1, 255)
        with open(bad, "wb") as f:
            f.write(blob)
        for view in ([], ["--json"], ["--svg", path("bad.svg"), "--trace", path("bad.json")]):
            code, _, err = run("inspect", bad, *view)
            check(code in (0, 1), f"flipped bytes ({i}, {view}): exit {code}: {err[-300:]}")
            check(code == 0 or err.startswith("ferry: error: "), f"flipped bytes ({i}): an error message")
            rejected += code == 1 and not view
    check(rejected > 50, f"most corrupted plans are rejected ({rejected} of 150)")


def main():
    os.makedirs(TMP, exist_ok=True)
    model = path("tiny")
    must("synth", "--preset", "tiny", "-o", model)
    resident, streamed = path("demo.plan"), path("streamed.plan")
    must("compile", model, "--target", "demo", "-o", resident)
    must("compile", model, "--target", "demo", "--budget", STREAM_BUDGET, "-o", streamed)

    check_summary(resident)
    check_json(resident, streamed=False)
    doc = check_json(streamed, streamed=True)
    check(doc["budget"] == STREAM_BUDGET and doc["options"]["budget"] == STREAM_BUDGET, "json: the budget asked")
    check_trace(streamed)
    render(check_svg(streamed, path("streamed.svg")))
    check_diff(resident, streamed)
    check_corrupted(streamed)

    # A real-size shape: 80 layers, a picture of the same size.
    big = path("llama70b")
    must("synth", "--preset", "llama-3.1-70b", "--shape-only", "-o", big)
    big_plan = path("llama70b.plan")
    must("compile", big, "--target", "a100-40g", "-o", big_plan)
    render(check_svg(big_plan, path("llama70b.svg")))
    check(len(json.loads(must("inspect", big_plan, "--json"))["layers"]) == 80, "json: 80 layers")

    if failures:
        print(f"{failures} check(s) failed", file=sys.stderr)
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
