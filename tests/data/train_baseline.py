"""
autoresearch pretraining run: one GPU, one file, a fixed 5-minute budget.

    uv run train.py

The agent edits this file (architecture, optimizer, hyperparameters) and nothing
else; the data, tokenizer, time budget and metric live in prepare.py.
"""

import os
os.environ["PYTORCH_ALLOC_CONF"] = "expandable_segments:True"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # kernel download bars never reach run.log

# Fork addition: a stale summary must never outlive a crashed run.
summary_path = os.environ.get("AUTORESEARCH_SUMMARY_PATH")
if summary_path and os.path.exists(summary_path):
    os.remove(summary_path)

import gc
import math
import re
import time
from dataclasses import dataclass, asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

from prepare import MAX_SEQ_LEN, TIME_BUDGET, Tokenizer, make_dataloader, evaluate_bpb
from prepare import get_device_type  # fork addition, with the sidecar helpers below
from prepare import SUMMARY_SCHEMA_VERSION, utc_now, file_sha256, module_constants, write_summary
from prepare import check_prepared  # fork addition: no data yet is one line, not a traceback

started_at_utc = utc_now()
with open(__file__) as f:  # fork addition: train.py as it was when the run started
    train_py_source = f.read()
train_py_sha256 = file_sha256(__file__)
device_type = get_device_type()

# -----------------------------------------------------------------------------
# Attention kernel: Flash-Attention 3 on NVIDIA (Hopper gets its own build)

flash_attn_func = None
if device_type == "cuda":
    try:
        from kernels import get_kernel
        cap = torch.cuda.get_device_capability()
        repo = "varunneal/flash-attention-3" if cap == (9, 0) else "kernels-community/flash-attn3"
        flash_attn_func = get_kernel(repo).flash_attn_interface.flash_attn_func
    except Exception as e:  # fork addition: fall back to SDPA (below) rather than die
        reason = " ".join(f"{type(e).__name__}: {e}".split())[:300]
        print(f"WARNING: Flash-Attention 3 could not be loaded, attention runs on PyTorch SDPA "
              f"(slower: fewer steps, figures not comparable with FA3 runs): {reason}", flush=True)

# Fork addition: off CUDA, or without the kernel, PyTorch SDPA with the same contract:
# (B, T, H, D) tensors, and with window (w, 0) query i sees keys i-w..i.
window_masks = {}


def sdpa_attn_func(q, k, v, causal=True, window_size=(-1, 0)):
    assert causal and window_size[1] == 0
    T, w = q.size(1), window_size[0]
    key = (T, w, q.device)
    if key not in window_masks:
        pos = torch.arange(T, device=q.device)
        behind = pos[:, None] - pos[None, :]  # query index minus key index
        window_masks[key] = (behind >= 0) & ((behind <= w) if w >= 0 else True)
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       attn_mask=window_masks[key], enable_gqa=k.size(2) != q.size(2))
    return y.transpose(1, 2)


attention_backend = "fa3" if flash_attn_func is not None else "sdpa"
if flash_attn_func is None:
    if device_type != "cuda":
        print(f"Attention: PyTorch SDPA on {device_type} (Flash-Attention 3 needs CUDA)")
    flash_attn_func = sdpa_attn_func


def maybe_compile(fn):
    """Fork addition: compile on CUDA only; a cold CPU compile outlasts a short CPU run."""
    return torch.compile(fn, dynamic=False, fullgraph=True) if device_type == "cuda" else fn


# Fork addition: upstream divides by the H100's peak on every GPU, so its MFU is wrong elsewhere.
# Dense bf16 peak FLOP/s, keyed by a pattern searched in the CUDA device name; first match wins.
PEAK_BF16_FLOPS_BY_DEVICE = {
    r"H100.*PCIe": 756e12, r"H[12]00.*NVL": 835.5e12, r"H100|H200": 989.5e12, r"B200": 2250e12,
    r"A100": 312e12, r"L40S": 362e12, r"L40\b": 181e12, r"L4\b": 121e12, r"A10\b": 125e12,
    r"RTX 4090": 165.2e12, r"RTX 3090": 71e12,
}


def peak_bf16_flops(device_name, fallback):
    """(peak FLOP/s, note): the table's figure, or `fallback` with a note for an unknown device."""
    for pattern, flops in PEAK_BF16_FLOPS_BY_DEVICE.items():
        if re.search(pattern, device_name):
            return flops, None
    return fallback, f"{device_name!r} not in PEAK_BF16_FLOPS_BY_DEVICE: MFU against the H100 peak, as upstream"

# -----------------------------------------------------------------------------
# GPT model

@dataclass
class GPTConfig:
    sequence_len: int = 2048
    vocab_size: int = 32768
    n_layer: int = 12
    n_head: int = 6
    n_kv_head: int = 6
    n_embd: int = 768
    window_pattern: str = "SSSL"


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def has_ve(layer_idx, n_layer):
    return layer_idx % 2 == (n_layer - 1) % 2  # alternate layers, always the last


def apply_rotary_emb(x, cos, sin):
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.n_head = config.n_head
        self.n_kv_head = config.n_kv_head
        self.head_dim = config.n_embd // config.n_head
        assert self.head_dim * self.n_head == config.n_embd and self.n_head % self.n_kv_head == 0
        kv_dim = self.n_kv_head * self.head_dim
        self.c_q = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.c_k = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_v = nn.Linear(config.n_embd, kv_dim, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.ve_gate_channels = 32
        self.ve_gate = (nn.Linear(self.ve_gate_channels, self.n_kv_head, bias=False)
                        if has_ve(layer_idx, config.n_layer) else None)

    def forward(self, x, ve, cos_sin, window_size):
        B, T, _ = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        if ve is not None:  # value residual (ResFormer), gated per kv head
            gate = 2 * torch.sigmoid(self.ve_gate(x[..., :self.ve_gate_channels]))
            v = v + gate.unsqueeze(-1) * ve.view(B, T, self.n_kv_head, self.head_dim)
        cos, sin = cos_sin
        q, k = norm(apply_rotary_emb(q, cos, sin)), norm(apply_rotary_emb(k, cos, sin))
        y = flash_attn_func(q, k, v, causal=True, window_size=window_size)
        return self.c_proj(y.contiguous().view(B, T, -1))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=False)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, config, layer_idx):
        super().__init__()
        self.attn = CausalSelfAttention(config, layer_idx)
        self.mlp = MLP(config)

    def forward(self, x, ve, cos_sin, window_size):
        x = x + self.attn(norm(x), ve, cos_sin, window_size)
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.window_sizes = self._compute_window_sizes(config)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
        head_dim = config.n_embd // config.n_head
        self.value_embeds = nn.ModuleDict({
            str(i): nn.Embedding(config.vocab_size, config.n_kv_head * head_dim)
            for i in range(config.n_layer) if has_ve(i, config.n_layer)
        })
        self.rotary_seq_len = config.sequence_len * 10  # headroom beyond the context
        cos, sin = self._precompute_rotary_embeddings(self.rotary_seq_len, head_dim)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _compute_window_sizes(self, config):
        lengths = {"L": config.sequence_len, "S": config.sequence_len // 2}
        pattern = config.window_pattern.upper()
        assert set(pattern) <= set(lengths), f"window pattern {pattern!r} may use only S and L"
        windows = [(lengths[pattern[i % len(pattern)]], 0) for i in range(config.n_layer)]
        windows[-1] = (config.sequence_len, 0)  # the last layer always sees the full context
        return windows

    def _precompute_rotary_embeddings(self, seq_len, head_dim, base=10000, device=None):
        if device is None:
            device = self.transformer.wte.weight.device
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
        angles = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv_freq)
        cos, sin = angles.cos().bfloat16(), angles.sin().bfloat16()
        return cos[None, :, None, :], sin[None, :, None, :]  # (1, T, 1, head_dim/2)

    @torch.no_grad()
    def init_weights(self):
        s = 3 ** 0.5 * self.config.n_embd ** -0.5  # uniform with the std of N(0, 1/n_embd)
        nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        for block in self.transformer.h:
            for linear in (block.attn.c_q, block.attn.c_k, block.attn.c_v, block.mlp.c_fc):
                nn.init.uniform_(linear.weight, -s, s)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.zeros_(block.attn.ve_gate.weight)
        for table in self.value_embeds.values():
            nn.init.uniform_(table.weight, -s, s)
        self.resid_lambdas.fill_(1.0)
        self.x0_lambdas.fill_(0.1)
        self.cos, self.sin = self._precompute_rotary_embeddings(self.rotary_seq_len,
                                                                self.config.n_embd // self.config.n_head)
        self.transformer.wte.to(dtype=torch.bfloat16)
        self.value_embeds.to(dtype=torch.bfloat16)

    def num_scaling_params(self):
        counts = {
            "wte": self.transformer.wte.weight.numel(),
            "value_embeds": sum(p.numel() for p in self.value_embeds.parameters()),
            "lm_head": self.lm_head.weight.numel(),
            "transformer_matrices": sum(p.numel() for p in self.transformer.h.parameters()),
            "scalars": self.resid_lambdas.numel() + self.x0_lambdas.numel(),
        }
        counts["total"] = sum(counts.values())
        return counts

    def estimate_flops(self):
        """Training FLOPs per token: 6 per matmul weight, plus attention scores and values."""
        counts = self.num_scaling_params()
        matmul_params = counts["total"] - counts["wte"] - counts["value_embeds"] - counts["scalars"]
        head_dim = self.config.n_embd // self.config.n_head
        T = self.config.sequence_len
        attention = sum(12 * self.config.n_head * head_dim * min(w, T) for w, _ in self.window_sizes)
        return 6 * matmul_params + attention

    def setup_optimizer(self, unembedding_lr=0.004, embedding_lr=0.2, matrix_lr=0.02, weight_decay=0.0,
                        adam_betas=(0.8, 0.95), scalar_lr=0.5):
        model_dim = self.config.n_embd
        dim_scale = (model_dim / 768) ** -0.5  # LRs were tuned at width 768
        print(f"Scaling AdamW LRs by 1/sqrt({model_dim}/768) = {dim_scale:.6f}")

        def adamw(params, lr, betas=adam_betas):
            return dict(kind="adamw", params=list(params), lr=lr, betas=betas, eps=1e-10, weight_decay=0.0)

        groups = [
            adamw(self.lm_head.parameters(), unembedding_lr * dim_scale),
            adamw(self.transformer.wte.parameters(), embedding_lr * dim_scale),
            adamw(self.value_embeds.parameters(), embedding_lr * dim_scale),
            adamw([self.resid_lambdas], scalar_lr * 0.01),
            adamw([self.x0_lambdas], scalar_lr, betas=(0.96, 0.95)),
        ]
        matrices = list(self.transformer.h.parameters())
        for shape in sorted({p.shape for p in matrices}):
            groups.append(dict(kind="muon", params=[p for p in matrices if p.shape == shape], lr=matrix_lr,
                               momentum=0.95, ns_steps=5, beta2=0.95, weight_decay=weight_decay))
        for group in groups:
            group["initial_lr"] = group["lr"]
        return MuonAdamW(groups)

    def forward(self, idx, targets=None, reduction="mean"):
        T = idx.size(1)
        cos_sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.transformer.wte(idx))
        x0 = x
        for i, block in enumerate(self.transformer.h):
            x = self.resid_lambdas[i] * x + self.x0_lambdas[i] * x0
            ve = self.value_embeds[str(i)](idx) if str(i) in self.value_embeds else None
            x = block(x, ve, cos_sin, self.window_sizes[i])
        logits = self.lm_head(norm(x)).float()
        logits = 15 * torch.tanh(logits / 15)  # soft cap
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1),
                               ignore_index=-1, reduction=reduction)

# -----------------------------------------------------------------------------
# Optimizer: AdamW for embeddings and scalars, Muon for the block matrices

# (a, b, c) per step of the "polar express" iteration towards the orthogonal polar factor
polar_express_coeffs = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)


@maybe_compile
def adamw_step_fused(p, grad, exp_avg, exp_avg_sq, step_t, lr_t, beta1_t, beta2_t, eps_t, wd_t):
    p.mul_(1 - lr_t * wd_t)
    exp_avg.lerp_(grad, 1 - beta1_t)
    exp_avg_sq.lerp_(grad.square(), 1 - beta2_t)
    bias1 = 1 - beta1_t ** step_t
    bias2 = 1 - beta2_t ** step_t
    denom = (exp_avg_sq / bias2).sqrt() + eps_t
    step_size = lr_t / bias1
    p.add_(exp_avg / denom, alpha=-step_size)


def polar_express(X, steps):
    """Push every singular value of X (spectral norm <= 1) towards 1."""
    tall = X.size(-2) > X.size(-1)
    for a, b, c in polar_express_coeffs[:steps]:
        if tall:
            A = X.mT @ X
            X = a * X + X @ (b * A + c * (A @ A))
        else:
            A = X @ X.mT
            X = a * X + (b * A + c * (A @ A)) @ X
    return X


@maybe_compile
def muon_step_fused(grads, params, momentum_buffer, second_momentum_buffer, momentum_t, lr_t, wd_t, beta2_t,
                    ns_steps):
    # Nesterov momentum
    momentum = momentum_t.to(grads.dtype)
    momentum_buffer.lerp_(grads, 1 - momentum)
    g = grads.lerp_(momentum_buffer, momentum)
    # orthogonalise in bf16 after scaling the spectral norm below 1
    X = g.bfloat16()
    X = X / (X.norm(dim=(-2, -1), keepdim=True) * 1.02 + 1e-6)
    g = polar_express(X, ns_steps)  # the update stays in bf16 from here on
    # NorMuon: per-row (tall or square) or per-column (wide) second moment, total norm preserved
    reduce_dim = -1 if g.size(-2) >= g.size(-1) else -2
    reduced = g.size(reduce_dim)
    v = g.float().square().mean(dim=reduce_dim, keepdim=True)
    norm_before = (v.sum(dim=(-2, -1), keepdim=True) * reduced).sqrt()
    second_momentum_buffer.lerp_(v.to(second_momentum_buffer.dtype), (1 - beta2_t.to(g.dtype)).float())
    scale = second_momentum_buffer.clamp_min(1e-10).rsqrt()
    norm_after = (v * reduced * scale.float().square()).sum(dim=(-2, -1), keepdim=True).sqrt()
    g = g * (scale * (norm_before / norm_after.clamp_min(1e-10))).to(g.dtype)
    # cautious weight decay: only where update and weight agree in sign (lr and wd in bf16, as the update)
    lr, wd = lr_t.to(g.dtype), wd_t.to(g.dtype)
    agree = (g * params) >= 0
    params.sub_(lr * g + lr * wd * params * agree)


class MuonAdamW(torch.optim.Optimizer):
    """One optimizer, two kinds of groups: kind='adamw' and kind='muon' (same-shape matrices)."""

    def __init__(self, param_groups):
        super().__init__(param_groups, defaults={})
        # 0-D CPU tensors keep the changing scalars out of the compiled graphs' guards
        scalar_device = "cpu" if device_type in ("cuda", "cpu") else device_type  # fork addition (MPS)
        scalar = lambda: torch.tensor(0.0, dtype=torch.float32, device=scalar_device)
        self._adamw_step_t, self._adamw_lr_t, self._adamw_beta1_t = scalar(), scalar(), scalar()
        self._adamw_beta2_t, self._adamw_eps_t, self._adamw_wd_t = scalar(), scalar(), scalar()
        self._muon_momentum_t, self._muon_lr_t, self._muon_wd_t, self._muon_beta2_t = (
            scalar(), scalar(), scalar(), scalar())

    def _step_adamw(self, group):
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] += 1
            self._adamw_step_t.fill_(state["step"])
            self._adamw_lr_t.fill_(group["lr"])
            self._adamw_beta1_t.fill_(group["betas"][0])
            self._adamw_beta2_t.fill_(group["betas"][1])
            self._adamw_eps_t.fill_(group["eps"])
            self._adamw_wd_t.fill_(group["weight_decay"])
            adamw_step_fused(p, p.grad, state["exp_avg"], state["exp_avg_sq"], self._adamw_step_t,
                             self._adamw_lr_t, self._adamw_beta1_t, self._adamw_beta2_t,
                             self._adamw_eps_t, self._adamw_wd_t)

    def _step_muon(self, group):
        params = group["params"]
        if not params:
            return
        p = params[0]
        rows, cols = p.shape
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros(len(params), rows, cols, dtype=p.dtype, device=p.device)
        if "second_momentum_buffer" not in state:
            shape = (len(params), rows, 1) if rows >= cols else (len(params), 1, cols)
            state["second_momentum_buffer"] = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self._muon_momentum_t.fill_(group["momentum"])
        self._muon_beta2_t.fill_(group["beta2"])
        self._muon_lr_t.fill_(group["lr"] * max(1.0, rows / cols) ** 0.5)
        self._muon_wd_t.fill_(group["weight_decay"])
        stacked_params = torch.stack(params)
        muon_step_fused(torch.stack([q.grad for q in params]), stacked_params, state["momentum_buffer"],
                        state["second_momentum_buffer"], self._muon_momentum_t, self._muon_lr_t,
                        self._muon_wd_t, self._muon_beta2_t, group["ns_steps"])
        torch._foreach_copy_(params, list(stacked_params.unbind(0)))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            if group["kind"] == "adamw":
                self._step_adamw(group)
            elif group["kind"] == "muon":
                self._step_muon(group)

# -----------------------------------------------------------------------------
# Hyperparameters: edit these directly, no flags

# Model architecture
ASPECT_RATIO = 64        # model_dim = DEPTH * ASPECT_RATIO, rounded up to a multiple of HEAD_DIM
HEAD_DIM = 128           # attention head size
WINDOW_PATTERN = "SSSL"  # per-layer window, cycled: L = full context, S = half

# Optimization
TOTAL_BATCH_SIZE = 2**19  # tokens per optimizer step
EMBEDDING_LR = 0.6        # AdamW, token and value embeddings
UNEMBEDDING_LR = 0.004    # AdamW, lm_head
MATRIX_LR = 0.04          # Muon, block matrices
SCALAR_LR = 0.5           # AdamW, per-layer scalars
WEIGHT_DECAY = 0.2        # cautious weight decay for Muon
ADAM_BETAS = (0.8, 0.95)
WARMUP_RATIO = 0.0        # fraction of the budget spent warming up the LR
WARMDOWN_RATIO = 0.5      # fraction of the budget spent decaying the LR
FINAL_LR_FRAC = 0.0       # final LR as a fraction of the initial one

# Model size
DEPTH = 8                 # transformer layers
DEVICE_BATCH_SIZE = 128   # sequences per forward/backward; lower it if memory runs out

# -----------------------------------------------------------------------------
# Schedules, all driven by progress = training time / TIME_BUDGET

def get_lr_multiplier(progress):
    if progress < WARMUP_RATIO:
        return progress / WARMUP_RATIO
    if progress < 1.0 - WARMDOWN_RATIO:
        return 1.0
    left = (1.0 - progress) / WARMDOWN_RATIO
    return left + (1.0 - left) * FINAL_LR_FRAC


def get_muon_momentum(step):
    frac = min(step / 300, 1.0)
    return (1 - frac) * 0.85 + frac * 0.95


def get_weight_decay(progress):
    return WEIGHT_DECAY * (1 - progress)


def build_model_config(depth):
    """The GPT for a depth; vocab_size is the tokenizer's, set during setup below."""
    model_dim = -(-depth * ASPECT_RATIO // HEAD_DIM) * HEAD_DIM
    n_head = model_dim // HEAD_DIM
    return GPTConfig(sequence_len=MAX_SEQ_LEN, vocab_size=vocab_size, n_layer=depth, n_head=n_head,
                     n_kv_head=n_head, n_embd=model_dim, window_pattern=WINDOW_PATTERN)

# -----------------------------------------------------------------------------
# Setup: tokenizer, model, optimizer, dataloader

seed = int(os.environ.get("AUTORESEARCH_SEED", "42"))  # fork addition: seed studies without edits
on_cuda = device_type == "cuda"
t_start = time.time()  # total_seconds counts from here: after imports and the kernel load
torch.manual_seed(seed)
if on_cuda:
    torch.cuda.manual_seed(seed)
torch.set_float32_matmul_precision("high")
device = torch.device(device_type)
autocast_ctx = torch.amp.autocast(device_type=device_type, dtype=torch.bfloat16)
H100_BF16_PEAK_FLOPS = 989.5e12
synchronize = torch.cuda.synchronize if on_cuda else (lambda: None)
device_name = torch.cuda.get_device_name() if on_cuda else device_type
peak_flops, peak_flops_note = peak_bf16_flops(device_name, H100_BF16_PEAK_FLOPS)  # fork addition

check_prepared()  # fork addition
tokenizer = Tokenizer.from_directory()
vocab_size = tokenizer.get_vocab_size()
print(f"Vocab size: {vocab_size:,}")

config = build_model_config(DEPTH)
print(f"Model config: {asdict(config)}")
with torch.device("meta"):
    model = GPT(config)
model.to_empty(device=device)
model.init_weights()

param_counts = model.num_scaling_params()
print("Parameter counts:")
for name, count in param_counts.items():
    print(f"  {name:24s}: {count:,}")
num_params = param_counts["total"]
num_flops_per_token = model.estimate_flops()
print(f"Estimated FLOPs per token: {num_flops_per_token:e}")

tokens_per_fwdbwd = DEVICE_BATCH_SIZE * MAX_SEQ_LEN
assert TOTAL_BATCH_SIZE % tokens_per_fwdbwd == 0, "TOTAL_BATCH_SIZE must be a multiple of a micro-batch"
grad_accum_steps = TOTAL_BATCH_SIZE // tokens_per_fwdbwd

optimizer = model.setup_optimizer(unembedding_lr=UNEMBEDDING_LR, embedding_lr=EMBEDDING_LR,
                                  matrix_lr=MATRIX_LR, weight_decay=WEIGHT_DECAY,
                                  adam_betas=ADAM_BETAS, scalar_lr=SCALAR_LR)
if on_cuda:  # fork addition: eager off CUDA (see maybe_compile)
    model = torch.compile(model, dynamic=False)

train_loader = make_dataloader(tokenizer, DEVICE_BATCH_SIZE, MAX_SEQ_LEN, "train")
x, y, epoch = next(train_loader)  # the first batch, fetched ahead

print(f"Time budget: {TIME_BUDGET}s")
print(f"Gradient accumulation steps: {grad_accum_steps}")

# -----------------------------------------------------------------------------
# Training loop

smooth_train_loss = 0.0
total_training_time = 0.0
step = 0

while True:
    synchronize()
    t0 = time.time()
    for micro_step in range(grad_accum_steps):
        with autocast_ctx:
            loss = model(x, y)
        train_loss = loss.detach()
        (loss / grad_accum_steps).backward()
        x, y, epoch = next(train_loader)  # prefetch while the device works

    progress = min(total_training_time / TIME_BUDGET, 1.0)
    lrm = get_lr_multiplier(progress)
    muon_momentum = get_muon_momentum(step)
    muon_weight_decay = get_weight_decay(progress)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lrm
        if group["kind"] == "muon":
            group["momentum"] = muon_momentum
            group["weight_decay"] = muon_weight_decay
    optimizer.step()
    model.zero_grad(set_to_none=True)

    train_loss_f = train_loss.item()
    if math.isnan(train_loss_f) or train_loss_f > 100:  # fast fail: the run has diverged
        print("FAIL")
        raise SystemExit(1)

    synchronize()
    dt = time.time() - t0
    if step > 10:  # steps 0-10 (11 steps) compile and warm up; they do not count
        total_training_time += dt

    ema_beta = 0.9
    smooth_train_loss = ema_beta * smooth_train_loss + (1 - ema_beta) * train_loss_f
    debiased_loss = smooth_train_loss / (1 - ema_beta ** (step + 1))
    tokens_per_sec = int(TOTAL_BATCH_SIZE / dt)
    mfu = 100 * num_flops_per_token * TOTAL_BATCH_SIZE / dt / peak_flops if on_cuda else 0.0
    remaining = max(0.0, TIME_BUDGET - total_training_time)
    print(f"\rstep {step:05d} ({100 * progress:.1f}%) | loss: {debiased_loss:.6f} | lrm: {lrm:.2f} | "
          f"dt: {dt * 1000:.0f}ms | tok/sec: {tokens_per_sec:,} | mfu: {mfu:.1f}% | epoch: {epoch} | "
          f"remaining: {remaining:.0f}s    ", end="", flush=True)

    # Python's GC pauses cost ~500ms; freeze what exists and collect by hand rarely
    if step == 0:
        gc.collect()
        gc.freeze()
        gc.disable()
    elif (step + 1) % 5000 == 0:
        gc.collect()

    step += 1
    if step > 10 and total_training_time >= TIME_BUDGET:
        break

print()
total_tokens = step * TOTAL_BATCH_SIZE

# -----------------------------------------------------------------------------
# Evaluation and summary

model.eval()
with autocast_ctx:
    val_bpb = evaluate_bpb(model, tokenizer, DEVICE_BATCH_SIZE)

t_end = time.time()
mfu_percent = (100 * num_flops_per_token * TOTAL_BATCH_SIZE * (step - 10) / total_training_time
               / peak_flops) if on_cuda and total_training_time > 0 else 0.0
peak_vram_mb = torch.cuda.max_memory_allocated() / 1024 / 1024 if on_cuda else 0.0

summary = {
    "val_bpb": round(val_bpb, 6),
    "training_seconds": total_training_time,
    "total_seconds": t_end - t_start,
    "peak_vram_mb": peak_vram_mb,
    "mfu_percent": mfu_percent,
    "total_tokens_M": total_tokens / 1e6,
    "num_steps": step,
    "num_params_M": num_params / 1e6,
    "depth": DEPTH,
}
print("---")
print(f"{'val_bpb:':<18}{val_bpb:.6f}")
print(f"{'training_seconds:':<18}{total_training_time:.1f}")
print(f"{'total_seconds:':<18}{t_end - t_start:.1f}")
print(f"{'peak_vram_mb:':<18}{peak_vram_mb:.1f}")
print(f"{'mfu_percent:':<18}{mfu_percent:.2f}")
print(f"{'total_tokens_M:':<18}{total_tokens / 1e6:.1f}")
print(f"{'num_steps:':<18}{step}")
print(f"{'num_params_M:':<18}{num_params / 1e6:.1f}")
print(f"{'depth:':<18}{DEPTH}")

# Fork addition: the same figures plus provenance, as JSON for MemoryLab
if summary_path:
    import prepare
    hyperparameters = module_constants(train_py_source, globals())
    write_summary(summary_path, {
        **summary,
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "started_at_utc": started_at_utc,
        "finished_at_utc": utc_now(),
        "device": device_name,
        "torch_version": torch.__version__,
        "attention": attention_backend,
        "mfu_peak_flops": peak_flops if on_cuda else None,
        "mfu_note": peak_flops_note if on_cuda else f"no CUDA device ({device_type}): MFU not measured",
        "time_budget_s": prepare.TIME_BUDGET,  # prepare's values: what the metric really used
        "max_seq_len": prepare.MAX_SEQ_LEN,
        "eval_tokens": prepare.EVAL_TOKENS,
        "seed": seed,
        "hyperparameters": hyperparameters,
        "train_py_sha256": train_py_sha256,
        "prepare_py_sha256": file_sha256(prepare.__file__),
    })
