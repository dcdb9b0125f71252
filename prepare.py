"""
One-time data preparation and the fixed runtime utilities for autoresearch.

    python prepare.py                  # 10 training shards + the validation shard
    python prepare.py --num-shards 4   # fewer shards for a quick start (-1: all)

Downloads climbmix parquet shards, trains a BPE tokenizer on them, and provides
what train.py imports: the tokenizer wrapper, the BOS-aligned dataloader and
evaluate_bpb, the metric. The agent never edits this file.
"""

import os
import re
import sys
import ast
import json
import math
import time
import pickle
import hashlib
import argparse
import urllib.parse
from multiprocessing import Pool

import requests
import pyarrow.parquet as pq
import rustbpe
import tiktoken
import torch

# -----------------------------------------------------------------------------
# Fixed constants: changing any of these changes the experiment

MAX_SEQ_LEN = 2048         # context length of every model and of the evaluation
TIME_BUDGET = 300          # seconds of training, compilation excluded
EVAL_TOKENS = 40 * 524288  # validation tokens scored by evaluate_bpb

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "autoresearch")
DATA_DIR = os.path.join(CACHE_DIR, "data")
TOKENIZER_DIR = os.path.join(CACHE_DIR, "tokenizer")

BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
MAX_SHARD = 6542  # shards are numbered 0..6542; the last one is held out
VAL_SHARD = MAX_SHARD
VAL_FILENAME = f"shard_{VAL_SHARD:05d}.parquet"
DOWNLOAD_ATTEMPTS = 5

VOCAB_SIZE = 8192
# GPT-4 style split, except that numbers split into groups of one or two digits
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = [f"<|reserved_{i}|>" for i in range(4)]
BOS_TOKEN = SPECIAL_TOKENS[0]
TOKENIZER_DOC_CHARS = 10_000         # each document is cut to this many characters
TOKENIZER_MAX_CHARS = 1_000_000_000  # total characters the tokenizer sees
DOC_BATCH_SIZE = 128                 # texts encoded together by the dataloader

# -----------------------------------------------------------------------------
# Download

def shard_path(index):
    return os.path.join(DATA_DIR, f"shard_{index:05d}.parquet")


def download_shard(index):
    """Fetch one shard into place; True when it is on disk afterwards."""
    path = shard_path(index)
    if os.path.exists(path):
        return True
    url = f"{BASE_URL}/{os.path.basename(path)}"
    tmp_path = path + ".tmp"
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with requests.get(url, stream=True, timeout=30) as response:
                response.raise_for_status()
                with open(tmp_path, "wb") as f:
                    for chunk in response.iter_content(chunk_size=1 << 20):
                        f.write(chunk)
            os.rename(tmp_path, path)  # a shard on disk is always complete
            return True
        except (requests.RequestException, OSError) as e:
            print(f"Attempt {attempt}/{DOWNLOAD_ATTEMPTS} for {os.path.basename(path)} failed: {e}")
            for leftover in (tmp_path, path):
                if os.path.exists(leftover):
                    os.remove(leftover)
            if attempt < DOWNLOAD_ATTEMPTS:
                time.sleep(2 ** attempt)
    return False


def check_connection():
    """Fork addition: one request to the data host before the parallel download, so an
    offline machine gets one line instead of a retry storm. Only a failure to connect
    stops here; once a connection works, download_shard retries transient errors."""
    url = f"{BASE_URL}/{VAL_FILENAME}"
    try:
        requests.head(url, timeout=30, allow_redirects=False).close()
    except requests.ConnectionError as e:  # DNS, refused, unreachable, TLS, proxy, connect timeout
        reason = getattr(e.args[0], "reason", None) if e.args else None
        detail = re.sub(r"^.*?[)>]: ", "", str(reason or e), count=1)
        host = urllib.parse.urlsplit(url).hostname
        sys.exit(f"error: cannot connect to {host} ({detail}); prepare.py needs the network "
                 "once to download the data: check the connection or proxy, then rerun")
    except requests.RequestException:
        pass  # connected, but the answer failed: transient, left to download_shard's retries


def download_data(num_shards, workers):
    os.makedirs(DATA_DIR, exist_ok=True)
    num_train = MAX_SHARD if num_shards == -1 else min(num_shards, MAX_SHARD)
    indices = list(range(num_train)) + [VAL_SHARD]
    missing = [i for i in indices if not os.path.exists(shard_path(i))]
    if missing:
        check_connection()
        print(f"Downloading {len(missing)} shards with {workers} workers...")
        with Pool(processes=workers) as pool:
            pool.map(download_shard, missing)
    ready = sum(os.path.exists(shard_path(i)) for i in indices)
    print(f"Data: {ready}/{len(indices)} shards ready in {DATA_DIR}")

# -----------------------------------------------------------------------------
# Tokenizer training

def list_parquet_files():
    if not os.path.isdir(DATA_DIR):
        return []
    names = sorted(n for n in os.listdir(DATA_DIR) if n.endswith(".parquet"))
    return [os.path.join(DATA_DIR, n) for n in names]


def split_files(split):
    files = list_parquet_files()
    val_path = os.path.join(DATA_DIR, VAL_FILENAME)
    if split == "val":
        return [p for p in files if p == val_path]
    return [p for p in files if p != val_path]


def tokenizer_texts():
    """Training-shard documents, each cut short, until the character budget is spent."""
    seen = 0
    for path in split_files("train"):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            for text in parquet.read_row_group(group, columns=["text"]).column("text").to_pylist():
                doc = text[:TOKENIZER_DOC_CHARS]
                seen += len(doc)
                yield doc
                if seen >= TOKENIZER_MAX_CHARS:
                    return


def token_byte_lengths(enc):
    """UTF-8 length of each token decoded alone, 0 for special tokens.

    A token holding part of a multi-byte character decodes to U+FFFD and so counts
    3 bytes; upstream's metric has always counted it that way, so we keep it."""
    special_ids = {enc.encode_single_token(name) for name in enc.special_tokens_set}
    return [0 if i in special_ids else len(enc.decode([i]).encode("utf-8"))
            for i in range(enc.n_vocab)]


def train_tokenizer():
    pickle_path = os.path.join(TOKENIZER_DIR, "tokenizer.pkl")
    bytes_path = os.path.join(TOKENIZER_DIR, "token_bytes.pt")
    if os.path.exists(pickle_path) and os.path.exists(bytes_path):
        print(f"Tokenizer: already trained in {TOKENIZER_DIR}")
        return
    if len(list_parquet_files()) < 2 or not split_files("val"):
        print("Tokenizer: need at least one training shard and the validation shard; run the download first")
        sys.exit(1)
    os.makedirs(TOKENIZER_DIR, exist_ok=True)

    t0 = time.time()
    bpe = rustbpe.Tokenizer()
    bpe.train_from_iterator(tokenizer_texts(), VOCAB_SIZE - len(SPECIAL_TOKENS), pattern=SPLIT_PATTERN)
    ranks = {bytes(piece): rank for piece, rank in bpe.get_mergeable_ranks()}
    specials = {name: len(ranks) + i for i, name in enumerate(SPECIAL_TOKENS)}
    enc = tiktoken.Encoding(name="rustbpe", pat_str=bpe.get_pattern(),
                            mergeable_ranks=ranks, special_tokens=specials)
    with open(pickle_path, "wb") as f:
        pickle.dump(enc, f)
    torch.save(torch.tensor(token_byte_lengths(enc), dtype=torch.int32), bytes_path)
    print(f"Tokenizer: trained {enc.n_vocab} tokens in {time.time() - t0:.1f}s")

    sample = "Hello world! 12345 apples cost $3.50. 東京は晴れ。"
    assert enc.decode(enc.encode_ordinary(sample)) == sample, "tokenizer round trip failed"

# -----------------------------------------------------------------------------
# Runtime utilities imported by train.py

class Tokenizer:
    """The trained tiktoken encoding plus the few calls training needs."""

    def __init__(self, enc):
        self.enc = enc
        self.bos_token_id = enc.encode_single_token(BOS_TOKEN)

    @classmethod
    def from_directory(cls, tokenizer_dir=TOKENIZER_DIR):
        with open(os.path.join(tokenizer_dir, "tokenizer.pkl"), "rb") as f:
            return cls(pickle.load(f))

    def get_vocab_size(self):
        return self.enc.n_vocab

    def get_bos_token_id(self):
        return self.bos_token_id

    def encode(self, text, prepend=None, num_threads=8):
        if prepend is not None and not isinstance(prepend, int):
            prepend = self.enc.encode_single_token(prepend)
        if isinstance(text, str):
            ids = self.enc.encode_ordinary(text)
            return ids if prepend is None else [prepend] + ids
        if isinstance(text, list):
            rows = self.enc.encode_ordinary_batch(text, num_threads=num_threads)
            return rows if prepend is None else [[prepend] + ids for ids in rows]
        raise TypeError(f"cannot encode {type(text).__name__}")

    def decode(self, ids):
        return self.enc.decode(ids)


def check_prepared():
    """Fork addition: exit with one line, not a traceback, when prepare.py has not run."""
    tokenizer_files = [os.path.join(TOKENIZER_DIR, n) for n in ("tokenizer.pkl", "token_bytes.pt")]
    if not all(map(os.path.exists, tokenizer_files)) or not split_files("train") or not split_files("val"):
        sys.exit(f"error: no tokenizer or data shards in {CACHE_DIR}: run `uv run prepare.py` first")


def get_token_bytes(device="cpu"):
    return torch.load(os.path.join(TOKENIZER_DIR, "token_bytes.pt"), map_location=device)


def get_device_type():
    """Fork addition: CUDA when present, else Apple MPS, else CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def document_batches(split):
    """Endless (texts, epoch) batches; train cycles over its shards, val reads its one shard."""
    assert split in ("train", "val"), split
    paths = split_files(split)
    assert paths, f"no {split} shards in {DATA_DIR}; run prepare.py"
    epoch = 1
    while True:
        for path in paths:
            parquet = pq.ParquetFile(path)
            for group in range(parquet.num_row_groups):
                texts = parquet.read_row_group(group, columns=["text"]).column("text").to_pylist()
                for start in range(0, len(texts), DOC_BATCH_SIZE):
                    yield texts[start:start + DOC_BATCH_SIZE], epoch
        epoch += 1


def fill_row(doc_buffer, capacity, refill):
    """Pack one row of exactly `capacity` tokens from the buffer (best fit, then crop)."""
    row = []
    while len(row) < capacity:
        refill()
        space = capacity - len(row)
        best, best_len = -1, 0
        for i, doc in enumerate(doc_buffer):
            if best_len < len(doc) <= space:  # first longest that fits
                best, best_len = i, len(doc)
        if best < 0:  # nothing fits: crop the first shortest, drop its remainder
            best = min(range(len(doc_buffer)), key=lambda i: len(doc_buffer[i]))
        row.extend(doc_buffer.pop(best)[:space])
    return row


def make_dataloader(tokenizer, B, T, split, buffer_size=1000):
    """Yield (inputs, targets, epoch): B rows of T+1 tokens, each starting at a BOS."""
    device_type = get_device_type()
    batches = document_batches(split)
    bos = tokenizer.get_bos_token_id()
    doc_buffer = []
    epoch = 1

    def refill():
        nonlocal epoch
        while len(doc_buffer) < buffer_size:
            texts, epoch = next(batches)
            doc_buffer.extend(tokenizer.encode(texts, prepend=bos))

    use_cuda = device_type == "cuda"
    if use_cuda:  # inputs and targets as two contiguous (B, T) halves of one buffer
        host = torch.empty((2, B, T), dtype=torch.long, pin_memory=True)
        device_batch = torch.empty((2, B, T), dtype=torch.long, device="cuda")
        copied = torch.cuda.Event()
    while True:
        rows = torch.tensor([fill_row(doc_buffer, T + 1, refill) for _ in range(B)], dtype=torch.long)
        if use_cuda:
            copied.synchronize()  # fork fix, upstream has no wait: the last async copy must be done with `host`
            host[0].copy_(rows[:, :-1])
            host[1].copy_(rows[:, 1:])
            device_batch.copy_(host, non_blocking=True)
            copied.record()
            yield device_batch[0], device_batch[1], epoch
        else:  # fork addition: no pinned memory off CUDA
            yield rows[:, :-1].contiguous().to(device_type), rows[:, 1:].contiguous().to(device_type), epoch

# -----------------------------------------------------------------------------
# Evaluation: the fixed metric (never changed by the agent)

@torch.no_grad()
def evaluate_bpb(model, tokenizer, batch_size):
    """Bits per byte on the validation shard: summed nats over scored bytes.

    Tokens with no bytes (specials like BOS) are not scored, so the figure does
    not depend on the vocabulary size."""
    loader = make_dataloader(tokenizer, batch_size, MAX_SEQ_LEN, "val")
    steps = EVAL_TOKENS // (batch_size * MAX_SEQ_LEN)
    token_bytes = None
    total_nats, total_bytes = 0.0, 0
    for _ in range(steps):
        x, y, _ = next(loader)
        if token_bytes is None:
            token_bytes = get_token_bytes(device=y.device)
        nats = model(x, y, reduction="none").view(-1).float()
        nbytes = token_bytes[y.reshape(-1)]
        total_nats += torch.where(nbytes > 0, nats, torch.zeros_like(nats)).sum().item()
        total_bytes += nbytes.sum().item()
    return total_nats / (math.log(2) * total_bytes)

# -----------------------------------------------------------------------------
# Fork addition: the run summary sidecar (AUTORESEARCH_SUMMARY_PATH)

SUMMARY_SCHEMA_VERSION = 1


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def module_constants(source, namespace):
    """Upper-case names assigned at module level in `source`, valued as in `namespace`."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        else:
            continue
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    kinds = (bool, int, float, str, tuple)
    return {name: namespace[name] for name in names
            if name in namespace and isinstance(namespace[name], kinds)}


def write_summary(path, summary):
    """Write the summary JSON atomically: a reader sees the old file, none, or the new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp_path = f"{path}.tmp.{os.getpid()}"
    with open(tmp_path, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp_path, path)

# -----------------------------------------------------------------------------
# One-time preparation

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Download data and train the tokenizer for autoresearch")
    parser.add_argument("--num-shards", type=int, default=10, help="training shards to download (-1 = all)")
    parser.add_argument("--download-workers", type=int, default=8, help="parallel download processes")
    args = parser.parse_args()
    print(f"Cache directory: {CACHE_DIR}")
    download_data(args.num_shards, args.download_workers)
    train_tokenizer()
    print("Done: data and tokenizer are ready.")
