#!/usr/bin/env python3
"""Independent oracle for kne_locate on a small random Llama model (python3-torch).

  attr_oracle.py make DIR TOKENIZER_JSON      writes a random checkpoint into DIR
  attr_oracle.py attr DIR IN.json OUT.json    literal integrated gradients

IN.json: {"ids": [...], "n_prompt": int, "steps": [m...], "modules": ["mlp.down", ...]}
(ids = tokens of "prompt target" with BOS; targets are ids[n_prompt:]).
The attribution is computed by the paper's literal definition, with weight gradients:
Attr_k = w_k / m * sum_i dP/dw_k at (i/m) W, P = sum of the target probabilities, and
for completeness log P(W) - log P(0 W) per layer (the log-probability objective). Own forward pass, float64.
"""
import json, math, os, shutil, struct, sys
import torch

L, H, NH, NKV, FF, V = 2, 64, 4, 2, 96, 32000
HD = H // NH
NAMES = {"attn.q": "self_attn.q_proj", "attn.k": "self_attn.k_proj", "attn.v": "self_attn.v_proj",
         "attn.o": "self_attn.o_proj", "mlp.gate": "mlp.gate_proj", "mlp.up": "mlp.up_proj", "mlp.down": "mlp.down_proj"}


def make(d, tok):
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    W = {"model.embed_tokens.weight": torch.randn(V, H, generator=g) * 0.5,
         "model.norm.weight": 1 + 0.1 * torch.randn(H, generator=g),
         "lm_head.weight": torch.randn(V, H, generator=g) * 0.2}
    for l in range(L):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(H, generator=g)
        W[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(H, generator=g)
        for n, shape in [("q", (NH * HD, H)), ("k", (NKV * HD, H)), ("v", (NKV * HD, H)), ("o", (H, NH * HD))]:
            W[p + f"self_attn.{n}_proj.weight"] = torch.randn(*shape, generator=g) / math.sqrt(shape[1])
        for n, shape in [("gate", (FF, H)), ("up", (FF, H)), ("down", (H, FF))]:
            W[p + f"mlp.{n}_proj.weight"] = torch.randn(*shape, generator=g) / math.sqrt(shape[1])
    hdr, off, blobs = {}, 0, []
    for k, t in W.items():
        b = t.float().contiguous().numpy().tobytes()
        hdr[k] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(hdr).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": H, "num_hidden_layers": L,
           "num_attention_heads": NH, "num_key_value_heads": NKV, "intermediate_size": FF, "vocab_size": V,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 128, "hidden_act": "silu",
           "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2}
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"))
    shutil.copy(tok, os.path.join(d, "tokenizer.json"))


def load(d):
    buf = open(os.path.join(d, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    out = {}
    for k, v in hdr.items():
        s, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(buf[8 + n + s:8 + n + e]), dtype=torch.float32).reshape(v["shape"]).double()
    return out


def forward(W, ids):
    T = len(ids)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2).double() / HD))
    ang = torch.outer(torch.arange(T).double(), inv)
    cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)
    rms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
    rot = lambda x: torch.cat([-x[..., HD // 2:], x[..., :HD // 2]], -1)
    mask = torch.full((T, T), float("-inf")).triu(1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms(x, W[p + "input_layernorm.weight"])
        q = (h @ W[p + "self_attn.q_proj.weight"].t()).view(T, NH, HD).transpose(0, 1)
        k = (h @ W[p + "self_attn.k_proj.weight"].t()).view(T, NKV, HD).transpose(0, 1)
        v = (h @ W[p + "self_attn.v_proj.weight"].t()).view(T, NKV, HD).transpose(0, 1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        k, v = k.repeat_interleave(NH // NKV, 0), v.repeat_interleave(NH // NKV, 0)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(HD) + mask, -1) @ v
        x = x + a.transpose(0, 1).reshape(T, H) @ W[p + "self_attn.o_proj.weight"].t()
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].t()) * (h @ W[p + "mlp.up_proj.weight"].t())
        x = x + g @ W[p + "mlp.down_proj.weight"].t()
    return rms(x, W["model.norm.weight"]) @ W["lm_head.weight"].t()


def target_prob(W, ids, n_prompt, log=False):
    lp = torch.log_softmax(forward(W, ids[:-1]), -1)
    return sum(lp[j - 1, ids[j]] if log else lp[j - 1, ids[j]].exp() for j in range(n_prompt, len(ids)))


def attr(d, inp, outp):
    W = load(d)
    q = json.load(open(inp))
    ids, npr = q["ids"], q["n_prompt"]
    res = {"scores": {}, "completeness": {}}
    for mod in q["modules"]:
        for l in range(L):
            key = f"model.layers.{l}.{NAMES[mod]}.weight"
            w0 = W[key]
            for m in q["steps"]:
                acc = torch.zeros_like(w0)
                for i in range(1, m + 1):
                    ws = (w0 * i / m).clone().requires_grad_(True)
                    W[key] = ws
                    (g,) = torch.autograd.grad(target_prob(W, ids, npr), ws)
                    acc += g
                W[key] = w0
                res["scores"][f"{mod}.{l}.{m}"] = (w0 * acc / m).sum(1).tolist()
            with torch.no_grad():  # for the log-probability objective: log P(W) - log P(0 W)
                p1 = target_prob(W, ids, npr, True).item()
                W[key] = w0 * 0
                p0 = target_prob(W, ids, npr, True).item()
                W[key] = w0
            res["completeness"][f"{mod}.{l}"] = p1 - p0
    json.dump(res, open(outp, "w"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    else:
        attr(sys.argv[2], sys.argv[3], sys.argv[4])
