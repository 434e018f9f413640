"""Memory-mapped reader for datatrove token shards (DocumentTokenizer format: `<n>.ds` little-endian uint16/uint32
ids, `<n>.ds.index` uint64 cumulative document ends, `<n>.ds.metadata` "tokenizer|width\\ncount\\n...").

Batches are a pure function of (seed, stage, step): the training cursor is just the step number, so a resumed run
reads exactly the batches the uninterrupted run would have, and every rank computes the same global batch plan and
takes its own rows (no communication, no per-rank files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError


@dataclass
class Shard:
    path: Path
    tokens: np.ndarray  # memmap
    doc_ends: np.ndarray  # int64 cumulative ends


def read_width(ds: Path) -> int:
    meta = Path(f"{ds}.metadata")
    if meta.is_file():
        first = meta.read_text().splitlines()[0] if meta.read_text().strip() else ""
        try:
            return int(first.rsplit("|", 1)[1])
        except (IndexError, ValueError):
            raise UserError(f"{meta}: first line should be 'tokenizer|width', got {first!r}") from None
    return 2  # datatrove's default token size when no metadata was written


def open_shards(directory: Path) -> list[Shard]:
    files = sorted(Path(directory).glob("*.ds"))
    if not files:
        raise UserError(f"{directory}: no token shards (*.ds); run `ocg corpus tokenize` first")
    shards = []
    for f in files:
        width = read_width(f)
        if width not in (2, 4):
            raise UserError(f"{f}.metadata: token width {width} is not 2 or 4 bytes")
        if f.stat().st_size % width:
            raise UserError(f"{f}: size {f.stat().st_size} is not a multiple of the token width {width}")
        n = f.stat().st_size // width
        index = Path(f"{f}.index")
        ends = np.fromfile(index, dtype="<u8").astype(np.int64) if index.is_file() else np.array([n], np.int64)
        if len(ends) and ends[-1] != n:
            raise UserError(f"{index}: last document end {ends[-1]} != {n} tokens in {f.name}")
        tokens = np.memmap(f, dtype="<u2" if width == 2 else "<u4", mode="r") if n else np.empty(0, np.uint16)
        shards.append(Shard(f, tokens, ends))
    return shards


class TokenSource:
    """One token directory's split (e.g. tokens/mono/train): shards sampled in proportion to their size."""

    def __init__(self, directory: Path, min_len: int):
        self.directory = Path(directory)
        self.shards = [s for s in open_shards(self.directory) if len(s.tokens) >= min_len]
        if not self.shards:
            raise UserError(f"{self.directory}: no shard holds the {min_len} tokens one training sequence needs")
        sizes = np.array([len(s.tokens) - min_len + 1 for s in self.shards], dtype=np.float64)
        self.p = sizes / sizes.sum()
        self.n_tokens = int(sum(len(s.tokens) for s in self.shards))

    def max_token(self, sample: int = 1 << 20) -> int:
        return max(int(s.tokens[:sample].max()) for s in self.shards if len(s.tokens))


def doc_ids_for(shard: Shard, start: int, length: int) -> np.ndarray:
    """Document number of each position in [start, start+length): attention masks stay inside a document."""
    return np.searchsorted(shard.doc_ends, np.arange(start, start + length), side="right")


class BatchPlan:
    """Global batch of a step: `rows` sequences of context+1 tokens drawn from the mixture with a seeded RNG."""

    def __init__(self, dirs: dict[str, float], context: int, seed: int, stage: int):
        self.context, self.seed, self.stage = context, seed, stage
        self.sources = [TokenSource(Path(d) / "train", context + 1) for d in dirs]
        w = np.array(list(dirs.values()), dtype=np.float64)
        self.weights = w / w.sum()

    def rows(self, step: int, first: int, count: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows [first, first+count) of the `total`-row global batch of `step`: (tokens (count, T+1), doc ids)."""
        rng = np.random.default_rng([self.seed, self.stage, step])
        src = rng.choice(len(self.sources), size=total, p=self.weights)
        draws = rng.random((total, 2))  # shard choice, offset: fixed per row, whatever the rank split
        n = self.context + 1
        toks = np.empty((count, n), dtype=np.int64)
        docs = np.empty((count, n), dtype=np.int64)
        for k, r in enumerate(range(first, first + count)):
            source = self.sources[src[r]]
            shard = source.shards[min(int(np.searchsorted(np.cumsum(source.p), draws[r, 0], side="right")),
                                      len(source.shards) - 1)]
            start = int(draws[r, 1] * (len(shard.tokens) - n + 1))
            toks[k] = shard.tokens[start:start + n]
            docs[k] = doc_ids_for(shard, start, n)
        return torch.from_numpy(toks), torch.from_numpy(docs)


class ValidSet:
    """A fixed prefix of the held-out split cut into non-overlapping windows, with the UTF-8 bytes it covers (for
    bits per byte) from decoding the predicted tokens with the run's tokenizer."""

    def __init__(self, dirs: list[str], context: int, max_tokens: int, tokenizer_path: str | None):
        windows, docs = [], []
        n = context + 1
        for d in dirs:
            valid = Path(d) / "valid"
            if not valid.is_dir() or not list(valid.glob("*.ds")):
                continue
            for shard in open_shards(valid):
                for start in range(0, len(shard.tokens) - n + 1, context):
                    if len(windows) * context >= max_tokens:
                        break
                    windows.append(np.asarray(shard.tokens[start:start + n], dtype=np.int64))
                    docs.append(doc_ids_for(shard, start, n))
        self.tokens = torch.from_numpy(np.stack(windows)) if windows else torch.empty(0, n, dtype=torch.long)
        self.doc_ids = torch.from_numpy(np.stack(docs)) if docs else torch.empty(0, n, dtype=torch.long)
        self.n_bytes = None
        if windows and tokenizer_path:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tokenizer_path))
            # Targets are tokens 1..T of each window; consecutive windows continue one stream, so decode per window.
            self.n_bytes = sum(len(tok.decode(w[1:].tolist(), skip_special_tokens=True).encode("utf-8"))
                               for w in self.tokens)

    def __len__(self) -> int:
        return len(self.tokens)


def tokenizer_vocab_size(path: str | Path) -> int:
    """Largest id + 1 in a tokenizer.json (model vocab and added tokens), read without importing our tokenizer."""
    import json

    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: tokenizer file does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a tokenizer.json ({e})") from None
    ids = list((data.get("model") or {}).get("vocab", {}).values()) + [t["id"] for t in data.get("added_tokens", [])]
    if not ids:
        raise UserError(f"{path}: tokenizer has no vocabulary")
    return max(ids) + 1
