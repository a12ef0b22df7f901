"""The ferry command as a person uses it:
  - `ferry --help` lists every command; each `ferry CMD --help` exits 0;
    an unknown command or option exits 2 with a hint;
  - `ferry devices` lists the Vulkan devices (lavapipe here) and says why
    there is no CUDA device;
  - the bundled default (small preset, demo target): the plan replayed with
    --backend vulkan gives the same tokens as the cpu backend, which are the
    reference's bit for bit (--check-reference);
  - --device picks a device by its number; a device that is not there is
    refused with a message naming it;
  - a plan's kernels are covered by a digest: one flipped bit in a SPIR-V
    module is refused, naming the kernel table;
  - a plan for an NVIDIA target carries a cubin per --arch plus PTX."""
import os
import re
import subprocess
import sys

FERRY = os.environ.get("FERRY", "ferry")
TMP = os.environ.get("FERRY_TMP", "/tmp/ferry_test_cli")
VK = {"VK_DRIVER_FILES": "/usr/share/vulkan/icd.d/lvp_icd.x86_64.json"}

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what, file=sys.stderr)


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    r = subprocess.run([FERRY] + [str(a) for a in args], capture_output=True, text=True, env=e)
    return r.returncode, r.stdout, r.stderr


def tokens(out):
    m = re.search(r"^tokens: ([0-9,]+)$", out, re.M)
    return m.group(1) if m else None


def check_cuda_kernels():
    """A plan for an NVIDIA target carries a cubin per --arch and PTX; --no-kernels
    none; an architecture NVRTC cannot build is refused and leaves no file."""
    tiny = os.path.join(TMP, "tiny")
    if not os.path.exists(os.path.join(tiny, "config.json")):
        check(run("synth", "--preset", "tiny", "-o", tiny)[0] == 0, "synth tiny")
    plan = os.path.join(TMP, "tiny-cuda.plan")
    code, _, err = run("compile", tiny, "--target", "rtx3060-12g", "--arch", "sm_75,sm_90", "-o", plan)
    if code != 0 and "NVRTC not available" in err:
        print("SKIP: no NVRTC; the CUDA kernel checks did not run")
        return
    check(code == 0, "compile for rtx3060-12g with --arch: " + err)
    kernels = run("inspect", plan, "--kernels")[1]
    for table in ("cubin sm_75:", "cubin sm_90:", "ptx compute_75:"):
        check(table in kernels, "the plan carries " + table)
    code, _, _ = run("compile", tiny, "--target", "rtx3060-12g", "--no-kernels", "-o", plan)
    check(code == 0 and "no kernels in this plan" in run("inspect", plan, "--kernels")[1], "--no-kernels")
    bad = os.path.join(TMP, "sm70.plan")
    code, _, err = run("compile", tiny, "--target", "rtx3060-12g", "--arch", "sm_70", "-o", bad)
    check(code == 1 and "sm_70" in err and "sm_75" in err and not os.path.exists(bad),
          "sm_70 is refused naming the supported architectures, and no file is left: " + err)


def main():
    os.makedirs(TMP, exist_ok=True)
    code, out, _ = run("--help")
    commands = re.findall(r"^  (\w+) ", out, re.M)
    check(code == 0 and {"synth", "graph", "run", "compile", "simulate", "inspect", "diff", "targets",
                         "devices"} <= set(commands), "ferry --help lists the commands: %s" % commands)
    for c in commands:
        code, out, _ = run(c, "--help")
        check(code == 0 and "usage: ferry " + c in out, "ferry %s --help" % c)
    code, _, err = run("nosuch")
    check(code == 2 and "unknown command" in err, "an unknown command exits 2")
    code, _, err = run("compile", "--nosuch", "x")
    check(code == 2 and "--help" in err, "an unknown option exits 2 with a hint")

    code, out, _ = run("devices", env=VK)
    check(code == 0 and "vulkan:" in out and "cuda:" in out, "ferry devices lists both APIs")
    vulkan_present = re.search(r"^  0: ", out, re.M) is not None

    model, plan = os.path.join(TMP, "small"), os.path.join(TMP, "small.plan")
    if not os.path.exists(os.path.join(model, "config.json")):
        code, _, err = run("synth", "--preset", "small", "-o", model, "--seed", "1")
        check(code == 0, "synth small: " + err)
    code, _, err = run("compile", model, "--target", "demo", "--prompt-len", "16", "--generate", "8", "-o", plan)
    check(code == 0, "compile small for demo: " + err)
    # The plan carries SPIR-V (demo targets spirv); one flipped bit in a kernel is refused by name.
    data = bytearray(open(plan, "rb").read())
    magic = data.find(bytes([0x03, 0x02, 0x23, 0x07]))
    check(magic > 0, "the plan carries SPIR-V modules")
    bad = os.path.join(TMP, "flipped-kernel.plan")
    data[magic + 64] ^= 0x10
    open(bad, "wb").write(bytes(data))
    code, _, err = run("inspect", bad)
    check(code == 1 and "plan.kernels[0].code" in err and "code_digest" in err,
          "a flipped bit in a kernel is refused naming plan.kernels[0].code: " + err)
    check_cuda_kernels()
    args = ["run", plan, "--prompt", "1,2,3", "--generate", "8"]
    code, out, err = run(*args, "--poison", "--check-reference")
    cpu = tokens(out)
    check(code == 0 and cpu and "identical (bit for bit)" in out, "cpu backend, poisoned, equals the reference: " + err)
    if vulkan_present:
        code, out, err = run(*args, "--backend", "vulkan", "--device", "0", env=VK)
        check(code == 0 and tokens(out) == cpu, "vulkan gives the cpu backend's tokens: %s vs %s %s"
              % (tokens(out), cpu, err))
        code, _, err = run(*args, "--backend", "vulkan", "--device", "7", env=VK)
        check(code == 1 and "device 7" in err, "a missing device is refused by number: " + err)
    else:
        print("SKIP: no Vulkan device; the vulkan checks did not run")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
