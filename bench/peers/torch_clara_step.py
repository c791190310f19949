"""The PyTorch peer of bench/clara-step.ts: one CLaRa training step (stage 1, 2 or 3) written
the way a PyTorch user writes it, on the CPU in float32: transformers' LlamaForCausalLM (the
GGUF file dequantised by transformers, or an HF folder), PEFT LoRA with one named adapter per
role (compressor, generator, query_reasoner) switched with set_adapter between the passes of
one autograd graph (as apple/ml-clara does), the memory-token rows appended with
resize_token_embeddings and trained through a gradient hook that keeps only those rows (as
ml-clara does), torch.optim.AdamW and clip_grad_norm_.

The case folder (bench/clara-case.ts) holds meta.json, batch.npz and params.npz. The script
first computes its no-dropout loss on that batch with those parameters and exits with status 1
when it differs from meta.expected.loss by more than 1e-3 relative; then it times --steps
training steps (train mode, LoRA dropout on) after --warmup untimed ones and prints one JSON
line.

usage: python torch_clara_step.py CASE_DIR --steps 2 --warmup 1 [--threads 2] [--hf-loss]

--hf-loss computes the CE with LlamaForCausalLM(labels=...) (logits over every prompt
position) instead of the default, which applies the LM head to the supervised positions only,
as our native code does (same value, less work).

peakMemoryBytes is the growth of the process's resident set (sampled from /proc/self/statm
every 2 ms during the warm-up and timed steps) over its size just before them, after the model
is loaded and the check has run: activations, gradients and optimizer state, not the model
weights (peakRssBytes is the absolute peak). Memory the check's forward freed but the allocator
kept is reused and not counted, so this is a lower bound on the step's working set.
"""

import argparse
import json
import os
import sys
import threading
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

LINEARS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def fail(msg):
    print(f"torch_clara_step: {msg}", file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------------------------
# Loading


def load_base(path):
    from transformers import LlamaForCausalLM

    kw = {"dtype": torch.float32}
    if path.endswith(".gguf"):
        # transformers dequantises every GGUF tensor to float32 and undoes llama.cpp's q/k row permutation.
        return LlamaForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path), **kw)
    return LlamaForCausalLM.from_pretrained(path, **kw)


def build_model(meta, params):
    """Base model + appended vocabulary rows + one PEFT LoRA adapter per role in params.npz."""
    from peft import LoraConfig, get_peft_model

    model = load_base(meta["model"])
    model.config.use_cache = False
    base_vocab, n = meta["baseVocab"], meta["nMem"]
    if model.get_input_embeddings().weight.shape[0] != base_vocab:
        fail(f"the model has {model.get_input_embeddings().weight.shape[0]} embedding rows, meta.baseVocab is {base_vocab}")
    if bool(model.config.tie_word_embeddings) != bool(meta.get("tieWordEmbeddings", model.config.tie_word_embeddings)):
        fail("tie_word_embeddings differs between the model and meta.json")
    # <MEM0..MEM{n-1}>, <AE>, <ENC>, <SEP>: appended rows, as ml-clara's resize_token_embeddings.
    model.resize_token_embeddings(base_vocab + n + 3, mean_resizing=False)
    rows = np.concatenate([params["clara.mem_embeddings"], params["clara.special_embeddings"]], 0)
    with torch.no_grad():
        model.get_input_embeddings().weight[base_vocab:] = torch.from_numpy(rows)
        if not model.config.tie_word_embeddings:
            model.get_output_embeddings().weight[base_vocab:] = torch.from_numpy(params["clara.lm_head_rows"])

    # Adapters present in params.npz, named as ours (<linear>.lora.<adapter>.a/.b).
    names = sorted({k.split(".lora.")[1].rsplit(".", 1)[0] for k in params if ".lora." in k})
    lora = meta["lora"]
    config = LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=LINEARS, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config, adapter_name=names[0])
    for name in names[1:]:
        peft_model.add_adapter(name, config)
    loaded = 0
    for module_name, module in peft_model.base_model.model.named_modules():
        if not hasattr(module, "lora_A"):
            continue
        for name in names:
            a = params.get(f"{module_name}.lora.{name}.a")
            b = params.get(f"{module_name}.lora.{name}.b")
            if a is None or b is None:
                fail(f"params.npz has no {module_name}.lora.{name}.a/.b")
            with torch.no_grad():
                module.lora_A[name].weight.copy_(torch.from_numpy(a).T)  # [r, in]
                module.lora_B[name].weight.copy_(torch.from_numpy(b).T)  # [out, r]
            loaded += 2
    expected_count = sum(1 for k in params if ".lora." in k)
    if loaded != expected_count:
        fail(f"loaded {loaded} LoRA tensors, params.npz has {expected_count}")
    return peft_model, names


class Trainable:
    """The trained set of meta.trainable: adapter names (all their LoRA tensors) and
    clara.mem_embeddings (the memory rows of the embedding table, through a gradient hook)."""

    def __init__(self, peft_model, meta):
        self.model = peft_model
        self.adapters = [t for t in meta["trainable"] if not t.startswith("clara.")]
        other = [t for t in meta["trainable"] if t.startswith("clara.")]
        unknown = [t for t in other if t != "clara.mem_embeddings"]
        if unknown:
            fail(f"unsupported trainable names {unknown}")
        self.lora = [p for n, p in peft_model.named_parameters()
                     if ".lora_" in n and any(f".{a}." in n for a in self.adapters)]
        if len(self.lora) == 0:
            fail(f"no LoRA parameters for trainable adapters {self.adapters}")
        self.embed = peft_model.get_input_embeddings().weight
        self.train_mem = "clara.mem_embeddings" in other
        params = list(self.lora)
        if self.train_mem:
            lo, hi = meta["baseVocab"], meta["baseVocab"] + meta["nMem"]
            keep = torch.zeros(self.embed.shape[0], 1)
            keep[lo:hi] = 1.0
            self.embed.requires_grad_(True)
            self.embed.register_hook(lambda g: g * keep)  # ml-clara's hook: only the MEM rows move
            params.append(self.embed)
        self.params = params
        self.mark()

    def mark(self):
        """requires_grad exactly on the trained set (PEFT's set_adapter toggles it per adapter)."""
        for n, p in self.model.named_parameters():
            p.requires_grad_(False)
        for p in self.lora:
            p.requires_grad_(True)
        if self.train_mem:
            self.embed.requires_grad_(True)


# ----------------------------------------------------------------------------------------------
# The CLaRa forward


class Clara:
    def __init__(self, peft_model, meta, trainable, hf_loss):
        self.peft = peft_model
        self.causal = peft_model.base_model.model  # LlamaForCausalLM with the LoRA layers injected
        self.decoder = self.causal.model  # LlamaModel: last_hidden_state is after the final RMSNorm
        self.meta = meta
        self.trainable = trainable
        self.hf_loss = hf_loss

    def use(self, adapter):
        self.peft.base_model.set_adapter(adapter)
        self.trainable.mark()

    def hidden(self, ids=None, valid=None, embeds=None):
        if embeds is None:
            embeds = self.decoder.embed_tokens(ids)
        return self.decoder(inputs_embeds=embeds, attention_mask=valid, use_cache=False).last_hidden_state

    def compress(self, ids, valid, adapter):
        """[rows, n, H] memory states and the MSE of means (valid document vs memory positions)."""
        self.use(adapter)
        n = self.meta["nMem"]
        h = self.hidden(ids, valid)
        L = ids.shape[1]
        is_mem = torch.arange(L) >= L - n
        v = valid.bool()
        doc = (v & ~is_mem).unsqueeze(-1).float()
        mem = (v & is_mem).unsqueeze(-1).float()
        doc_mean = (h * doc).sum(1) / doc.sum(1).clamp(min=1.0)
        mem_mean = (h * mem).sum(1) / mem.sum(1).clamp(min=1.0)
        return h[:, L - n:], F.mse_loss(doc_mean, mem_mean)

    def generator_ce(self, batch, compressed, k):
        self.use(self.meta["adapters"]["generator"])
        ids, valid, loss_mask = batch["prompt_ids"], batch["prompt_valid"], batch["prompt_loss_mask"]
        n, mem0 = self.meta["nMem"], self.meta["mem0Id"]
        embeds = self.decoder.embed_tokens(ids).clone()
        for b in range(ids.shape[0]):
            p = int((ids[b] == mem0).nonzero()[0, 0])  # the first <MEM0>, as ml-clara's _replace_embeddings
            for j in range(k):
                s = p + j * (n + 1)
                embeds[b, s:s + n] = compressed[b * k + j]
        if self.hf_loss:
            labels = torch.where(loss_mask.bool(), ids, torch.full_like(ids, -100))
            return self.causal(inputs_embeds=embeds, attention_mask=valid, labels=labels, use_cache=False).loss
        h = self.hidden(embeds=embeds, valid=valid)
        sel = loss_mask.bool().clone()
        sel[:, 0] = False
        rows, cols = sel.nonzero(as_tuple=True)
        logits = self.causal.lm_head(h[rows, cols - 1])  # [M, V + n + 3]
        return F.cross_entropy(logits, ids[rows, cols])

    def loss(self, batch):
        m = self.meta
        ad = m["adapters"]
        if m["stage"] in (1, 2):
            compressed, mse = self.compress(batch["docs_ids"], batch["docs_valid"], ad["compressor"])
            ce = self.generator_ce(batch, compressed, m["k"])
            return ce + m["mseWeight"] * mse, ce, mse
        # Stage 3
        B = batch["prompt_ids"].shape[0]
        N, n, k = m["numCandidates"], m["nMem"], m["k"]
        q, _ = self.compress(batch["query_ids"], batch["query_valid"], ad["queryReasoner"])
        with torch.no_grad():  # frozen compressor (its dropout follows train/eval mode, as in ml-clara)
            docs, _ = self.compress(batch["candidates_ids"], batch["candidates_valid"], ad["compressor"])
        H = docs.shape[-1]
        M = docs.reshape(B, N, n * H)
        scores = torch.einsum("bd,bnd->bn", F.normalize(q.reshape(B, n * H), dim=-1), F.normalize(M, dim=-1))
        weights = differentiable_topk(scores, k, m["tau"])  # [B, k, N]
        selected = (weights @ M).reshape(B * k, n, H)
        ce = self.generator_ce(batch, selected, k)
        return ce, ce, None


def differentiable_topk(scores, k, tau):
    """Straight-through top-k (spec §2.3): hard one-hot rows forward, iterated masked softmax backward."""
    s = scores / max(tau, 1e-6)
    B, N = s.shape
    idx = torch.sort(-s.detach(), dim=-1, stable=True).indices[:, :k]
    hard = F.one_hot(idx, N).float()  # [B, k, N]
    taken = torch.zeros(B, N)
    soft = []
    for j in range(k):
        soft.append(torch.softmax(s + torch.log(1 - taken + 1e-8), dim=-1))
        taken = torch.clamp(taken + hard[:, j], max=1.0)
    soft = torch.stack(soft, 1)
    return hard + soft - soft.detach()


# ----------------------------------------------------------------------------------------------
# Memory


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    def __init__(self, interval=0.002):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self):
        self.start = rss_bytes()
        self.peak = self.start
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


# ----------------------------------------------------------------------------------------------


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_TORCH_THREADS", 2)))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hf-loss", action="store_true")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    a = ap.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)  # peft calls a renamed transformers method
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    import peft
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    with open(os.path.join(a.case, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("dtype", "float32") != "float32":
        fail(f"only float32 cases are supported, not {meta['dtype']}")
    with np.load(os.path.join(a.case, "params.npz")) as z:
        params = {k: z[k].astype(np.float32) for k in z.files}
    with np.load(os.path.join(a.case, "batch.npz")) as z:
        batch = {}
        for k in z.files:
            v = z[k]
            batch[k] = torch.from_numpy(v.astype(np.int64))

    t_load = time.perf_counter()
    peft_model, _ = build_model(meta, params)
    trainable = Trainable(peft_model, meta)
    clara = Clara(peft_model, meta, trainable, a.hf_loss)
    load_seconds = time.perf_counter() - t_load

    # 1. The check: no-dropout loss against ours.
    peft_model.eval()
    with torch.no_grad():
        loss, ce, mse = clara.loss(batch)
    check = {"loss": loss.item(), "ce": ce.item(), "mse": None if mse is None else mse.item()}
    expected = meta["expected"]["loss"]
    rel = abs(check["loss"] / expected - 1)
    if not np.isfinite(check["loss"]) or rel > a.tolerance:
        fail(f"check failed: our loss {check['loss']:.6f} (ce {check['ce']:.6f}, mse {check['mse']}) vs expected "
             f"{expected:.6f} (ce {meta['expected']['ce']}, mse {meta['expected'].get('mse')}); relative error {rel:.2e}")

    # 2. Timed steps: train mode (LoRA dropout on), AdamW, global-norm clipping.
    ad = meta["adamw"]
    if ad["weightDecay"] != 0 and trainable.train_mem:
        # AdamW's decoupled decay would shrink every row of the embedding table, not only the MEM rows.
        fail("weight decay with trainable memory rows is not supported by this peer")
    opt = torch.optim.AdamW(trainable.params, lr=meta["lr"], betas=(ad["beta1"], ad["beta2"]), eps=ad["eps"],
                            weight_decay=ad["weightDecay"])
    peft_model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _, _ = clara.loss(batch)
        trainable.mark()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(trainable.params, meta["maxGradNorm"])
        opt.step()
        return loss.item(), norm.item()

    seconds, losses, norms = [], [], []
    with RssPeak() as mem:
        for _ in range(a.warmup):
            step()
        for _ in range(a.steps):
            t0 = time.perf_counter()
            l, g = step()
            seconds.append(time.perf_counter() - t0)
            losses.append(l)
            norms.append(g)
    missing = [i for i, p in enumerate(trainable.lora) if p.grad is None]
    if missing and a.steps + a.warmup > 0:
        fail(f"{len(missing)} trainable LoRA tensors got no gradient")

    print(json.dumps({
        "peer": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "seconds": seconds,
        "peakMemoryBytes": mem.peak - mem.start,
        "peakMemoryKind": "max RSS growth during warm-up + timed steps over the RSS before them (sampled every 2 ms)",
        "peakRssBytes": mem.peak,
        "checkLoss": check["loss"],
        "checkParts": {"ce": check["ce"], "mse": check["mse"]},
        "expectedLoss": expected,
        "losses": losses,
        "gradNorms": norms,
        "trainable": sum(p.numel() for p in trainable.lora) + (meta["nMem"] * trainable.embed.shape[1] if trainable.train_mem else 0),
        "loss": "hf-labels" if a.hf_loss else "lm_head on supervised positions",
        "loadSeconds": round(load_seconds, 2),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
