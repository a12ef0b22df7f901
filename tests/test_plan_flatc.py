"""Plans are FlatBuffers that any FlatBuffers tool reads, checked with the
reference tools, not with ferry's own code:
  - flatc decodes a compiled plan to JSON with the expected values;
  - flatc builds a plan from edited JSON that ferry's reader accepts (and a
    JSON edit that breaks an index is rejected with the field named);
  - C++ generated from plan.fbs by flatc --cpp, compiled here, verifies every
    plan ferry writes; and whatever it rejects among corrupted plans, ferry's
    reader rejects too.
ferry's reader is driven through `test_plan --read` (built beside this test)."""
import json
import os
import shutil
import struct
import subprocess
import sys

FERRY = os.environ.get("FERRY", "ferry")
SRC = os.environ.get("FERRY_SOURCE_DIR", os.path.join(os.path.dirname(__file__), ".."))
TMP = os.environ.get("FERRY_TMP", "/tmp/ferry_test_plan_flatc")
SCHEMA = os.path.join(SRC, "schedules", "plan.fbs")
# FERRY_TMP is build/tests/tmp_<test>; the C tests are built in build/tests.
READER = os.path.join(os.path.dirname(os.path.abspath(TMP)), "test_plan")

failures = 0


def check(cond, what):
    global failures
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        failures += 1


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def must(*args):
    r = run(*args)
    if r.returncode != 0:
        print(" ".join(map(str, args)), "failed:\n", r.stdout, r.stderr, file=sys.stderr)
        sys.exit(1)
    return r.stdout


def decode(plan):
    """flatc's JSON for a plan (defaults included, so every field is there)."""
    must("flatc", "--json", "--strict-json", "--defaults-json", "--raw-binary", "-o", TMP, SCHEMA, "--", plan)
    with open(os.path.join(TMP, os.path.splitext(os.path.basename(plan))[0] + ".json")) as f:
        return json.load(f)


def encode(doc, name):
    path = os.path.join(TMP, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    must("flatc", "--binary", "-o", TMP, SCHEMA, path)
    return os.path.join(TMP, name + ".plan")


def ferry_reads(paths):
    """{path: None (accepted) or the error message} from ferry's reader."""
    r = run(READER, "--read", *paths)
    out = {}
    for line in r.stdout.splitlines():
        path, _, rest = line.partition(": ")
        out[path] = None if rest == "ok" else rest
    if len(out) != len(paths):
        print("test_plan --read gave", r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        sys.exit(1)
    return out


def main():
    if not shutil.which("flatc"):
        print("SKIP: flatc not installed")
        return 0
    if not os.path.exists(READER):
        print("test_plan not built at", READER, file=sys.stderr)
        return 1
    os.makedirs(TMP, exist_ok=True)
    model = os.path.join(TMP, "tiny")
    must(FERRY, "synth", "--preset", "tiny", "-o", model)
    common = ["--prompt-len", "16", "--generate", "4"]
    plans = {}
    for name, opts in [("ferry", []), ("first-k", ["--policy", "first-k", "--budget", "300K"]),
                       ("ngl", ["--policy", "ngl", "--budget", "300K"]),
                       ("sequential", ["--policy", "sequential", "--budget", "300K"])]:
        plans[name] = os.path.join(TMP, name + ".plan")
        must(FERRY, "compile", model, *common, *opts, "-o", plans[name])

    # 1. flatc decodes a plan; the JSON says what was compiled.
    doc = decode(plans["first-k"])
    check(doc["format_version"] == 1, "format_version 1")
    g = doc["graph"]
    cfg = g["config"]
    check(cfg["architecture"] == "LlamaForCausalLM" and cfg["n_layers"] == 4, "config of the tiny model")
    check(len(g["layers"]) == 4 and g["layers"][0]["name"] == "model.layers.0", "layers")
    check(g["context"] == 20, "context = prompt + generate")
    check([s["name"] for s in g["stages"]] == ["prefill", "decode"], "graph stages")
    check(g["stages"][0]["max_tokens"] == 16 and g["stages"][1]["repeat"] == 4, "stage sizes")
    names = [v["name"] for v in g["values"]]
    check("model.embed_tokens.weight" in names, "embedding weight present")
    weights = [v for v in g["values"] if v["kind"] == "Weight"]
    sizes = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4}
    for v in g["values"]:
        n = 1
        for d in v["shape"]:
            n *= d
        check(v["nbytes"] == n * sizes[v["dtype"]], "nbytes of " + v["name"])
    st_path = os.path.join(model, "model.safetensors")
    with open(st_path, "rb") as f:
        header = struct.unpack("<Q", f.read(8))[0]
    files = g["files"]
    check(len(files) == 1 and files[0]["size"] == os.path.getsize(st_path), "weight file and size")
    fp = files[0]["fingerprint"]
    check(fp["size"] == os.path.getsize(st_path) and fp["hashed_bytes"] == 8 + header and fp["digest"] != 0,
          "weight fingerprint covers the safetensors header")
    cfp = g["config_fingerprint"]
    check(cfp["hashed_bytes"] == os.path.getsize(os.path.join(model, "config.json")), "config.json fingerprint")
    check(all(0 <= w["file"] < len(files) and w["file_offset"] + w["nbytes"] <= files[0]["size"] for w in weights),
          "weights inside their file")
    check(doc["target"]["name"] == "demo" and doc["target"]["code_target"] == "spirv", "target copied in")
    opts = doc["options"]
    check(opts["policy"] == "FirstK" and opts["budget"] == 300 * 1024, "options: policy and budget")
    extra = {o["key"]: o["value"] for o in opts["extra"]}
    check(extra.get("context") == "20" and extra.get("generate") == "4" and extra.get("prompt_tokens") == "16",
          "options: extra strings %r" % extra)
    s = doc["schedule"]
    check(s["policy"] == "FirstK" and s["n_slots"] >= 1 and s["slot_bytes"] > 0, "streaming schedule")
    check([r["kind"] for r in s["regions"]] == ["Resident", "Slots", "KV", "Activations"], "regions in order")
    check(all(r["offset"] + r["bytes"] <= s["device_bytes"] <= s["budget"] for r in s["regions"]), "regions fit")
    check(len(s["placement"]) == len(g["values"]) == len(s["device_offset"]), "per-value arrays")
    check("Streamed" in s["placement"], "some weights streamed")
    check([st["name"] for st in s["stages"]] == ["load", "prefill", "decode"], "schedule stages")
    for si, st in enumerate(s["stages"]):
        for q in ("compute", "copy"):
            for ci, c in enumerate(st[q]):
                at = "stages[%d].%s[%d]" % (si, q, ci)
                if c["kind"] == "Launch":
                    node = g["nodes"][c["node"]]
                    check(len(c["args"]) >= len(node["inputs"]) + 1, at + ": bindings")
                    check(node["stage"] == st["graph_stage"], at + ": node of the stage")
                if c["kind"] in ("Signal", "Wait"):
                    check(0 <= c["event"] < len(st["events"]), at + ": event")
                if c["kind"] == "Copy":
                    check(c["bytes"] > 0 and c["seconds"] > 0, at + ": copy size and time")
    check(any(c["kind"] == "Evict" for c in s["stages"][1]["compute"]), "evictions in prefill")
    kernels = doc.get("kernels", [])
    check(len(kernels) == 1 and kernels[0].get("format") == "spirv" and kernels[0].get("entries"),
          "a plan for a spirv target carries its SPIR-V kernels")

    # 2. A plan flatc builds from edited JSON is accepted; the edits are there.
    doc["target"]["description"] = "edited by test_plan_flatc"
    doc["options"]["extra"].append({"key": "note", "value": "edited"})
    doc["schedule"]["stages"][2]["copy"][1]["seconds"] = 0.5
    edited = encode(doc, "edited")
    res = ferry_reads([edited])
    check(res[edited] is None, "ferry reads the plan flatc built: %s" % res[edited])
    again = decode(edited)
    check(again["target"]["description"] == "edited by test_plan_flatc", "edit survives")
    check(again["schedule"]["stages"][2]["copy"][1]["seconds"] == 0.5, "edited seconds survive")
    # An index out of range, written by flatc: rejected, the field named.
    launch = next(i for i, c in enumerate(doc["schedule"]["stages"][1]["compute"]) if c["kind"] == "Launch")
    doc["schedule"]["stages"][1]["compute"][launch]["node"] = len(g["nodes"]) + 5
    broken = encode(doc, "broken")
    res = ferry_reads([broken])
    want = "plan.schedule.stages[1].compute[%d].node" % launch
    check(res[broken] is not None and want in res[broken], "bad node index named: %s" % res[broken])

    # 3. The C++ verifier generated from plan.fbs accepts every plan ferry writes.
    if not shutil.which("g++"):
        print("SKIP: g++ not installed; the C++ verifier part is left out")
    else:
        must("flatc", "--cpp", "-o", TMP, SCHEMA)
        src = os.path.join(TMP, "verify_plan.cpp")
        with open(src, "w") as f:
            f.write(VERIFIER)
        exe = os.path.join(TMP, "verify_plan")
        must("g++", "-std=c++17", "-O1", "-I", TMP, src, "-o", exe)
        seeds = sorted(os.path.join(SRC, "tests", "fuzz", "corpus", n)
                       for n in os.listdir(os.path.join(SRC, "tests", "fuzz", "corpus")))
        ours = list(plans.values()) + [edited] + seeds
        r = run(exe, *ours)
        check(r.returncode == 0, "C++ verifier accepts ferry's plans:\n" + r.stdout)
        # Corrupted variants: whatever the reference verifier rejects, ferry rejects.
        with open(plans["first-k"], "rb") as f:
            data = f.read()
        bad_dir = os.path.join(TMP, "corrupt")
        os.makedirs(bad_dir, exist_ok=True)
        bad = []
        for i in range(600):
            b = bytearray(data)
            if i % 6 == 5:
                b = b[: i * len(data) // 600]
            else:
                b[i * len(data) // 600] ^= 1 << (i % 8)
            p = os.path.join(bad_dir, "c%03d.plan" % i)
            with open(p, "wb") as f:
                f.write(bytes(b))
            bad.append(p)
        r = run(exe, *bad)
        cpp = {line.split(": ")[0]: line.endswith(": ok") for line in r.stdout.splitlines()}
        mine = ferry_reads(bad)
        both_reject = sum(1 for p in bad if not cpp[p] and mine[p] is not None)
        missed = [p for p in bad if not cpp[p] and mine[p] is None]
        check(not missed, "ferry accepts what the C++ verifier rejects: %s" % missed[:5])
        print("corrupted plans: C++ verifier rejects %d of %d, ferry rejects %d (all of those among them: %d)" %
              (sum(1 for p in bad if not cpp[p]), len(bad), sum(1 for p in bad if mine[p] is not None),
               both_reject))

    if failures:
        print("%d check(s) failed" % failures, file=sys.stderr)
        return 1
    print("ok")
    return 0


VERIFIER = r"""
#include <cstdio>
#include <fstream>
#include <iterator>
#include <vector>
#include "plan_generated.h"

int main(int argc, char **argv) {
  int bad = 0;
  for (int i = 1; i < argc; i++) {
    std::ifstream f(argv[i], std::ios::binary);
    std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    flatbuffers::Verifier v(buf.data(), buf.size());
    bool ok = !buf.empty() && ferry::plan::VerifyPlanBuffer(v);
    std::printf("%s: %s\n", argv[i], ok ? "ok" : "rejected");
    bad += !ok;
  }
  return bad ? 1 : 0;
}
"""

if __name__ == "__main__":
    sys.exit(main())
