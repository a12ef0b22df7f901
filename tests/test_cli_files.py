"""The ferry command on the files a person points it at by mistake (issue 10):
  - a FIFO as config.json, a weights file or the shard index is refused by
    name by graph, compile and run, instead of hanging;
  - config.json -> /dev/zero is refused, not read into a growing buffer."""
import os
import shutil
import subprocess
import sys

FERRY = os.environ.get("FERRY", "ferry")
TMP = os.environ.get("FERRY_TMP", "/tmp/ferry_test_cli_files")

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAILED:", what, file=sys.stderr)


def run(*args, timeout=60):
    """(exit code, stdout, stderr); a hang is exit code 'timeout'."""
    try:
        r = subprocess.run([FERRY] + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", "", "(timed out after %ds)" % timeout
    return r.returncode, r.stdout, r.stderr


def fresh(name, *synth_args):
    """A new model folder TMP/name from the tiny preset."""
    path = os.path.join(TMP, name)
    shutil.rmtree(path, ignore_errors=True)
    code, _, err = run("synth", "--preset", "tiny", "-o", path, *synth_args)
    check(code == 0, "synth %s: %s" % (name, err))
    return path


def replace_with_fifo(path):
    os.unlink(path)
    os.mkfifo(path)


def commands(model):
    """The commands that read a model folder, each with what it needs."""
    return [("graph", model), ("compile", model), ("run", model, "--prompt", "1", "--generate", "1")]


def check_fifo_inputs():
    cases = []
    m = fresh("fifo-config")
    replace_with_fifo(os.path.join(m, "config.json"))
    cases.append((m, "config.json"))
    m = fresh("fifo-weights")
    replace_with_fifo(os.path.join(m, "model.safetensors"))
    cases.append((m, "model.safetensors"))
    m = fresh("fifo-index", "--shards", "2")
    replace_with_fifo(os.path.join(m, "model.safetensors.index.json"))
    cases.append((m, "model.safetensors.index.json"))
    m = fresh("fifo-shard", "--shards", "2")
    shard = sorted(f for f in os.listdir(m) if f.endswith(".safetensors"))[0]
    replace_with_fifo(os.path.join(m, shard))
    cases.append((m, shard))
    for model, name in cases:
        want = "%s: is a FIFO, not a regular file" % os.path.join(model, name)
        for args in commands(model):
            code, _, err = run(*args, timeout=20)
            check(code == 1 and want in err, "ferry %s with %s a FIFO is refused by name: %s %s"
                  % (args[0], name, code, err))


def check_device_config():
    m = fresh("zero-config")
    os.unlink(os.path.join(m, "config.json"))
    os.symlink("/dev/zero", os.path.join(m, "config.json"))
    code, _, err = run("graph", m, timeout=20)
    check(code == 1 and "config.json: is a character device, not a regular file" in err,
          "config.json -> /dev/zero is refused: %s %s" % (code, err))


def main():
    os.makedirs(TMP, exist_ok=True)
    check_fifo_inputs()
    check_device_config()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
