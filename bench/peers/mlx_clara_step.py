"""The Python MLX peer of bench/clara-step.ts: one CLaRa stage step (spec §2.1-2.3) written the
way an mlx user writes it on top of mlx-lm: the mlx-lm model with its linears wrapped in a
multi-adapter LoRA module, nn.value_and_grad over the trainable parameters, a step compiled
with mx.compile as mlx_lm.tuner.trainer compiles it, optim.AdamW and optim.clip_grad_norm.

It reads a case folder written by bench/clara-case.ts (meta.json, batch.npz, params.npz; the
conventions are in meta.json's "notes"), first checks that its loss with dropout off equals
meta.expected.loss (ours) within 1e-3 relative and exits with status 2 when it does not, then
times --steps steps after --warmup with dropout on. Prints one JSON object on the last line.

usage: python mlx_clara_step.py CASE_DIR --steps 2 --warmup 1 [--compile 1] [--seed 0]
"""

import argparse
import json
import os
import sys
import time
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np
from mlx.utils import tree_flatten

# The correctness oracle's loader (GGUF dequantisation and q/k un-permutation, or mlx_lm.load).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "__tests__", "oracle"))
from mlx_lm_oracle import load_model  # noqa: E402

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
CHECK_TOLERANCE = 1e-3


class Switch:
    """Which adapter the wrapped linears apply: exactly one per pass (spec §1.3)."""
    name = None


class LoRA(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        self.lora_a = a  # [in, r]
        self.lora_b = b  # [r, out]


class MultiLoRALinear(nn.Module):
    """A frozen linear with named LoRA adapters; y = W x + scale * (dropout(x) A) B for the active one."""

    def __init__(self, linear, adapters, scale, dropout, switch):
        super().__init__()
        self.linear = linear
        self.adapters = adapters
        self.dropout = nn.Dropout(p=dropout)
        self.scale = scale
        self.switch = switch

    def __call__(self, x):
        y = self.linear(x)
        adapter = self.adapters.get(self.switch.name)
        if adapter is None:
            return y
        return y + self.scale * ((self.dropout(x) @ adapter.lora_a) @ adapter.lora_b)


class Clara(nn.Module):
    """The mlx-lm model plus CLaRa's appended vocabulary rows and adapter switch."""

    def __init__(self, lm, params, meta):
        super().__init__()
        self.lm = lm
        self.switch = Switch()
        lora = meta["lora"]
        names = [n for n in meta["adapters"].values() if any(f".lora.{n}." in k for k in params)]
        for i, layer in enumerate(lm.model.layers):
            for key in LINEARS:
                parent_name, attr = key.split(".")
                parent = getattr(layer, parent_name)
                prefix = f"model.layers.{i}.{key}.lora."
                adapters = {n: LoRA(params[prefix + n + ".a"], params[prefix + n + ".b"]) for n in names}
                setattr(parent, attr, MultiLoRALinear(getattr(parent, attr), adapters, lora["alpha"] / lora["rank"],
                                                      lora["dropout"], self.switch))
        self.mem_embeddings = params["clara.mem_embeddings"]
        self.special_embeddings = params["clara.special_embeddings"]
        self.tied = bool(meta["tieWordEmbeddings"])
        if not self.tied:
            self.lm_head_rows = params["clara.lm_head_rows"]
        self._adapter_names = names

    def linears(self):
        return [m for _, m in self.named_modules() if isinstance(m, MultiLoRALinear)]

    def embed(self, ids):
        table = self.lm.model.embed_tokens.weight
        V = table.shape[0]
        extra = mx.concatenate([self.mem_embeddings, self.special_embeddings], axis=0)
        base = table[mx.minimum(ids, V - 1)]
        added = extra[mx.maximum(ids - V, 0)]
        return mx.where((ids >= V)[..., None], added, base)

    def head(self):
        if self.tied:
            return mx.concatenate([self.lm.model.embed_tokens.weight, self.mem_embeddings, self.special_embeddings], axis=0)
        return mx.concatenate([self.lm.lm_head.weight, self.lm_head_rows], axis=0)

    def hidden(self, embeddings, valid, adapter):
        """Final-norm hidden states; causal attention over valid keys (and each position itself)."""
        self.switch.name = adapter
        L = embeddings.shape[1]
        pos = mx.arange(L)
        causal = pos[None, :] <= pos[:, None]
        diagonal = pos[None, :] == pos[:, None]
        mask = causal[None, None] & (valid[:, None, None, :] | diagonal[None, None])
        h = embeddings
        for layer in self.lm.model.layers:
            h = layer(h, mask)
        return self.lm.model.norm(h)

    def compress(self, ids, valid, n, adapter):
        """Memory-token states [R, n, H] and the stage 1-2 MSE of the document and memory means."""
        h = self.hidden(self.embed(ids), valid, adapter)
        L = ids.shape[1]
        is_mem = (mx.arange(L) >= L - n)[None]
        doc = (valid & ~is_mem).astype(h.dtype)[..., None]
        mem = (valid & is_mem).astype(h.dtype)[..., None]
        mean = lambda m: (h * m).sum(1) / mx.maximum(m.sum(1), 1.0)
        return h[:, L - n:, :], mx.mean(mx.square(mean(doc) - mean(mem)))

    def generator_ce(self, ids, valid, slots, rows, targets, compressed, adapter):
        H = compressed.shape[-1]
        emb = self.embed(ids)
        filled = compressed.reshape(-1, H)[mx.maximum(slots, 0)]
        emb = mx.where((slots >= 0)[..., None], filled.astype(emb.dtype), emb)
        h = self.hidden(emb, valid, adapter)
        picked = h.reshape(-1, H)[rows]
        logits = picked @ self.head().T
        return nn.losses.cross_entropy(logits, targets, reduction="mean")


def cosine(q, docs):
    norm = lambda x: x / mx.maximum(mx.sqrt(mx.sum(mx.square(x), -1, keepdims=True)), 1e-12)
    return (norm(q)[:, None, :] @ norm(docs).swapaxes(1, 2)).squeeze(1)


def differentiable_topk(scores, k, tau):
    """Straight-through top-k (spec §2.3): W = hard + soft - stop_gradient(soft), [B, k, N]."""
    B, N = scores.shape
    s = scores / max(tau, 1e-6)
    idx = mx.argsort(-mx.stop_gradient(s), axis=-1)[:, :k]
    hard = (idx[..., None] == mx.arange(N)[None, None, :]).astype(mx.float32)
    taken = mx.zeros((B, N))
    soft = []
    for j in range(k):
        soft.append(mx.softmax(s + mx.log(1.0 - mx.stop_gradient(taken) + 1e-8), axis=-1))
        taken = mx.minimum(taken + hard[:, j], 1.0)
    soft = mx.stack(soft, axis=1)
    return hard + soft - mx.stop_gradient(soft)


def prompt_plan(ids, loss_mask, mem0, n, k):
    """Host-side indices of the prompt: which compressed row fills each position, and the CE rows and targets."""
    B, L = ids.shape
    slots = np.full((B, L), -1, dtype=np.int32)
    for b in range(B):
        hits = np.nonzero(ids[b] == mem0)[0]
        if len(hits) == 0:
            raise SystemExit(f"prompt {b} has no <MEM0> ({mem0}); the case folder does not match meta.json")
        p = int(hits[0])
        for j in range(k):
            slots[b, p + j * (n + 1): p + j * (n + 1) + n] = (b * k + j) * n + np.arange(n)
    b_idx, t_idx = np.nonzero(loss_mask[:, 1:])
    rows = (b_idx * L + t_idx).astype(np.int32)  # hidden at t-1 predicts ids[t]
    targets = ids[b_idx, t_idx + 1].astype(np.int32)
    return slots, rows, targets


def load_case(case_dir):
    """meta.json, params.npz (as mx arrays) and batch.npz (as numpy arrays) of a case folder."""
    with open(os.path.join(case_dir, "meta.json")) as f:
        meta = json.load(f)
    params = dict(mx.load(os.path.join(case_dir, "params.npz")))
    batch = dict(np.load(os.path.join(case_dir, "batch.npz")))
    return meta, params, batch


def build(meta, params, batch):
    """The model with the case's parameters, the step's inputs, and loss_fn(model, *inputs) -> (loss, ce, mse)."""
    stage, n, k = meta["stage"], meta["nMem"], meta["k"]
    names = meta["adapters"]
    lm = load_model(meta["model"])
    lm.set_dtype(mx.float32)
    model = Clara(lm, params, meta)

    ids = batch["prompt_ids"].astype(np.int32)
    slots, rows, targets = prompt_plan(ids, batch["prompt_loss_mask"].astype(bool), meta["mem0Id"], n, k)
    inputs = [mx.array(ids), mx.array(batch["prompt_valid"].astype(bool)), mx.array(slots), mx.array(rows), mx.array(targets)]
    if stage == 3:
        inputs += [mx.array(batch["query_ids"].astype(np.int32)), mx.array(batch["query_valid"].astype(bool)),
                   mx.array(batch["candidates_ids"].astype(np.int32)), mx.array(batch["candidates_valid"].astype(bool))]
    else:
        inputs += [mx.array(batch["docs_ids"].astype(np.int32)), mx.array(batch["docs_valid"].astype(bool))]

    def loss_fn(model, p_ids, p_valid, p_slots, p_rows, p_targets, *enc):
        if stage == 3:
            q_ids, q_valid, c_ids, c_valid = enc
            B = p_ids.shape[0]
            N = c_ids.shape[0] // B
            q, _ = model.compress(q_ids, q_valid, n, names["queryReasoner"])
            docs, _ = model.compress(c_ids, c_valid, n, names["compressor"])
            docs = mx.stop_gradient(docs)
            H = docs.shape[-1]
            flat = docs.reshape(B, N, n * H)
            W = differentiable_topk(cosine(q.reshape(B, n * H), flat), k, meta["tau"])
            selected = (W @ flat).reshape(B * k, n, H)
            ce = model.generator_ce(p_ids, p_valid, p_slots, p_rows, p_targets, selected, names["generator"])
            return ce, ce, mx.array(0.0)
        d_ids, d_valid = enc
        compressed, mse = model.compress(d_ids, d_valid, n, names["compressor"])
        ce = model.generator_ce(p_ids, p_valid, p_slots, p_rows, p_targets, compressed, names["generator"])
        return ce + meta["mseWeight"] * mse, ce, mse

    return model, inputs, loss_fn


def set_trainable(model, meta):
    """Freezes all but meta's 'trainable' (adapter names, clara.mem_embeddings); returns their parameter count."""
    model.freeze()
    for name in meta["trainable"]:
        if name in model._adapter_names:
            for linear in model.linears():
                linear.adapters[name].unfreeze()
        elif name == "clara.mem_embeddings":
            model.unfreeze(keys=["mem_embeddings"], recurse=False)
        else:
            raise SystemExit(f"meta.json trains '{name}', which this peer does not know")
    return sum(v.size for _, v in tree_flatten(model.trainable_parameters()))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", type=int, default=1)
    a = ap.parse_args(argv)

    meta, params, batch = load_case(a.case)
    stage = meta["stage"]
    mx.random.seed(a.seed)
    model, inputs, loss_fn = build(meta, params, batch)

    # The check: dropout off, the parameters of params.npz, against our evalLosses.
    model.eval()
    check, check_ce, check_mse = loss_fn(model, *inputs)
    mx.eval(check, check_ce, check_mse)
    expected = meta["expected"]["loss"]
    rel = abs(check.item() / expected - 1)
    if not rel <= CHECK_TOLERANCE:
        print(f"CHECK FAILED: stage {stage} rho {meta['compressionRate']}: Python MLX loss {check.item():.6f} "
              f"(ce {check_ce.item():.6f}, mse {check_mse.item():.6f}) vs ours {expected:.6f} "
              f"(ce {meta['expected']['ce']}, mse {meta['expected']['mse']}): relative error {rel:.2e} > {CHECK_TOLERANCE}",
              file=sys.stderr)
        sys.exit(2)

    trainable = set_trainable(model, meta)
    model.train()

    adamw = meta["adamw"]
    optimizer = optim.AdamW(learning_rate=meta["lr"], betas=[adamw["beta1"], adamw["beta2"]], eps=adamw["eps"],
                            weight_decay=adamw["weightDecay"], bias_correction=True)
    loss_and_grad = nn.value_and_grad(model, lambda m, *x: loss_fn(m, *x)[0])
    state = [model.state, optimizer.state, mx.random.state]

    def step(*x):
        loss, grads = loss_and_grad(model, *x)
        grads, _ = optim.clip_grad_norm(grads, meta["maxGradNorm"])
        optimizer.update(model, grads)
        return loss

    if a.compile:
        step = partial(mx.compile, inputs=state, outputs=state)(step)

    times = []
    mx.reset_peak_memory()
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss = step(*inputs)
        mx.eval(state, loss)
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(json.dumps({
        "peer": "mlx " + mx.__version__ + ", mlx-lm " + __import__("mlx_lm").__version__,
        "compiled": bool(a.compile),
        "trainable": trainable,
        "seconds": times,
        "loss": loss.item(),
        "checkLoss": check.item(),
        "checkParts": {"ce": check_ce.item(), "mse": check_mse.item() if stage != 3 else None},
        "peakMemory": mx.get_peak_memory(),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
