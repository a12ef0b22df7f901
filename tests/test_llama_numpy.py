"""The CPU reference against an independent llama forward in numpy (float64).

For tiny synthetic models of each architecture and weight dtype, `ferry run`
generates 4 tokens and writes every step's logits; numpy reads the same
safetensors files itself, recomputes the whole sequence (prompt + generated
tokens) at once, and the logits of every step must agree.

Tolerance: max |ferry - numpy| <= 1e-4 * max|logit| + 1e-5 per step. Both
sides read the same weights (f16/bf16 widen exactly to f32 and f64), so the
difference is only ferry's f32 arithmetic: ~6e-8 relative rounding per
operation, which through 4 layers of norms, dot products of length <= 176,
softmax and residual sums comes to ~3e-7 of max|logit| (measured; the test
prints the worst diff / tolerance, ~3e-3). The bound leaves ~300x headroom
(so a different but legitimate summation order passes), yet real bugs (RoPE
without the llama3 scaling, a wrong GQA head mapping, a missing bias, an
off-by-one position) change logits by 1e-2 to 1e-1 of max|logit| and fail.
Greedy tokens must match wherever numpy's top-2 margin exceeds twice the
tolerance (then rounding cannot flip the argmax)."""
import json
import os
import struct
import subprocess
import sys

import numpy as np

FERRY = os.environ.get("FERRY", "ferry")
TMP = os.environ.get("FERRY_TMP", "/tmp/ferry_test_llama_numpy")
ARCHS = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"]
DTYPES = ["f32", "f16", "bf16"]
PROMPT = [1, 7, 200, 42, 255, 3]
GENERATE = 4


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        raw = data[base + begin : base + end]
        if info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        elif info["dtype"] == "F16":
            arr = np.frombuffer(raw, dtype="<f2")
        elif info["dtype"] == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{name}: dtype {info['dtype']}")
        tensors[name] = arr.astype(np.float64).reshape(info["shape"])
    return tensors


def load_weights(model_dir):
    tensors = {}
    for fname in sorted(os.listdir(model_dir)):
        if fname.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(model_dir, fname)))
    return tensors


def inv_freq(cfg, head_dim):
    """HF transformers' default and llama3 (_compute_llama3_parameters) frequencies."""
    theta = float(cfg.get("rope_theta", 10000.0))
    f = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        orig = rs["original_max_position_embeddings"]
        wavelen = 2 * np.pi / f
        scaled = np.where(wavelen > orig / low, f / factor, f)
        smooth = (orig / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < orig / high) & ~(wavelen > orig / low)
        f = np.where(medium, smoothed, scaled)
    return f


def rope(x, positions, freqs):
    """x: [T, heads, d]; rotate_half convention (pairs i, i + d/2)."""
    ang = positions[:, None] * freqs[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rot * sin


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def forward(cfg, w, tokens):
    """Logits of every position of tokens, float64."""
    H, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    d = cfg.get("head_dim") or H // nh
    eps = cfg["rms_norm_eps"]
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    freqs = inv_freq(cfg, d)
    mask = np.triu(np.full((T, T), -np.inf), k=1)
    x = w["model.embed_tokens.weight"][np.array(tokens)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = h @ w[p + f"self_attn.{name}.weight"].T
            bias = w.get(p + f"self_attn.{name}.bias")
            return y if bias is None else y + bias

        q = rope(proj("q_proj").reshape(T, nh, d), pos, freqs)
        k = rope(proj("k_proj").reshape(T, nkv, d), pos, freqs)
        v = proj("v_proj").reshape(T, nkv, d)
        group = nh // nkv
        k = np.repeat(k, group, axis=1)
        v = np.repeat(v, group, axis=1)
        scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        scores -= scores.max(axis=-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(axis=-1, keepdims=True)
        attn = np.einsum("hts,shd->thd", probs, v).reshape(T, nh * d)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def check(arch, dtype, seed):
    model = os.path.join(TMP, f"{arch}-{dtype}")
    subprocess.run([FERRY, "synth", "--preset", "tiny", "-o", model, "--arch", arch, "--dtype", dtype,
                    "--seed", str(seed)], check=True, capture_output=True, text=True)
    logits_file = os.path.join(TMP, f"{arch}-{dtype}.logits")
    run = subprocess.run([FERRY, "run", model, "--prompt", ",".join(map(str, PROMPT)), "--generate",
                          str(GENERATE), "--threads", "2", "--logits-out", logits_file],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return False, f"ferry run failed: {run.stderr.strip()}"
    line = next(l for l in run.stdout.splitlines() if l.startswith("tokens: "))
    generated = [int(t) for t in line[len("tokens: "):].split(",")]
    with open(os.path.join(model, "config.json")) as f:
        cfg = json.load(f)
    vocab = cfg["vocab_size"]
    got = np.fromfile(logits_file, dtype="<f4").astype(np.float64)
    if got.size != GENERATE * vocab or len(generated) != GENERATE:
        return False, f"expected {GENERATE} x {vocab} logits and {GENERATE} tokens, got {got.size}, {len(generated)}"
    got = got.reshape(GENERATE, vocab)
    sequence = PROMPT + generated[:-1]
    want = forward(cfg, load_weights(model), sequence)[len(PROMPT) - 1 :]
    worst = 0.0
    for step in range(GENERATE):
        tol = 1e-4 * np.abs(want[step]).max() + 1e-5
        diff = np.abs(got[step] - want[step]).max()
        worst = max(worst, diff / tol)
        if diff > tol:
            return False, f"step {step}: max |diff| {diff:.3g} > tolerance {tol:.3g}"
        top2 = np.sort(want[step])[-2:]
        if top2[1] - top2[0] > 2 * tol and generated[step] != int(np.argmax(want[step])):
            return False, f"step {step}: ferry chose {generated[step]}, numpy {int(np.argmax(want[step]))}"
        if not np.all(np.isfinite(got[step])):
            return False, f"step {step}: non-finite logits"
    return True, f"worst diff / tolerance {worst:.2e}"


def main():
    os.makedirs(TMP, exist_ok=True)
    passed = failed = 0
    for i, arch in enumerate(ARCHS):
        for j, dtype in enumerate(DTYPES):
            ok, detail = check(arch, dtype, seed=10 * i + j + 1)
            print(f"{'ok  ' if ok else 'FAIL'} {arch} {dtype}: {detail}")
            passed += ok
            failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
