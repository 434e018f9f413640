r"""The code tokenizer: HF `tokenizers` byte-level BPE, CodeGen's whitespace-run tokens and Qwen2.5-Coder's control
tokens, stored as one `tokenizer.json`, so a HuggingFace model directory's own `tokenizer.json` loads the same way.

Two rules hold for every tokenizer this module returns:
- Control tokens (`<|endoftext|>`, the FIM and repository tokens) are never produced from text. Source files that
  contain the string "<|endoftext|>" encode it as plain text; the control ids are spliced in by whoever builds a
  document (the corpus tokenizer, the FIM renderer, the server).
- decode(encode(x)) == x for any str x (byte-level BPE has no unknown symbols and we add no normalizer).

A tokenizer may carry a chat template (tokenizer_config.json's `chat_template`, as HuggingFace stores it, or a
chat_template.jinja beside it): a post-trained model's does (prompt_format.CHAT_TEMPLATE), and an imported
Qwen2.5-Coder's carries its own. save() writes tokenizer_config.json with it, so transformers' AutoTokenizer reads it.

A tokenizer this module trains splits text with GPT-2's pre-tokenization rule changed as Qwen2's is at line breaks:
a line break ends the punctuation run before it ("):\n") or, after anything else, is a pre-token of its own (with
the blank lines and trailing spaces before it), so the next line's indentation never joins it. With GPT-2's rule
"\n    return" is "\n   " + " return", and a prompt that ends in a newline ends in a lone "\n" token that the model
has practically never seen followed by an indented line. Tokenizers loaded from disk (a HuggingFace model's, or one
trained before this rule) keep their own rule.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from .errors import UserError
from .filemodes import as_if_created
from .prompt_format import EOS, SPECIAL_TOKENS

FILE_NAME = "tokenizer.json"
CONFIG_NAME = "tokenizer_config.json"
TEMPLATE_NAME = "chat_template.jinja"  # where newer transformers versions save a chat template
# CodeGen's 38 whitespace tokens: runs of 31..2 spaces, then 9..2 tabs (its tokenizer's added_tokens). CodeGen added
# them to GPT-2's text-trained vocabulary as added tokens, which cut the text before pre-tokenization; on a BPE trained
# on code that costs bytes per token (figures in the README), because every word after an indent loses its "Ġword"
# form. So here they are ordinary BPE tokens, reachable through merges and guaranteed to exist: a run that stands as
# its own pre-token always encodes as one id.
WHITESPACE_TOKENS = tuple(" " * n for n in range(31, 1, -1)) + tuple("\t" * n for n in range(9, 1, -1))
_BYTE_CHAR = {" ": "Ġ", "\t": "ĉ"}  # how ByteLevel spells these bytes inside the BPE vocabulary
# GPT-2's pre-tokenization regex with Qwen2's two line-break rules: `[\r\n]*` after a punctuation run, and
# `\s*[\r\n]+` before the whitespace alternatives. The first keeps most lines' break inside a token ("):\n"), which
# costs far fewer bytes per token than a break of its own after every line (measured in the README).
PRE_TOKENIZER_PATTERN = (r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*"
                         r"|\s*[\r\n]+|\s+(?!\S)|\s+")


class CodeTokenizer:
    """A thin wrapper over `tokenizers.Tokenizer` with the project's contract (see the module docstring)."""

    def __init__(self, tokenizer: Tokenizer, eos_token: str | None = EOS, chat_template: str | None = None):
        tokenizer.encode_special_tokens = True  # control tokens in *text* stay text (see module docstring)
        self._tok = tokenizer
        self._vocab = tokenizer.get_vocab(with_added_tokens=True)
        self.eos_id = self._vocab.get(eos_token) if eos_token else None
        if self.eos_id is None:
            self.eos_id = self._vocab.get(EOS)
        self.chat_template = chat_template
        # Every token the tokenizer declares special (ours, and a HuggingFace tokenizer's others): never text.
        self.special_ids = frozenset(i for i, t in tokenizer.get_added_tokens_decoder().items() if t.special)
        # Ids may have gaps (HF tokenizers reserve ranges), so the size a model needs is the largest id + 1.
        self.vocab_size = max(self._vocab.values()) + 1

    # ---- loading and saving ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "CodeTokenizer":
        """`path` is a tokenizer.json or a directory holding one (ours or a HuggingFace model directory)."""
        path = Path(path)
        file = path / FILE_NAME if path.is_dir() else path
        if not file.is_file():
            where = f"{path}: no {FILE_NAME}" if path.is_dir() else f"{path}: no such tokenizer file"
            raise UserError(where + " (train one with `ocg tokenizer train`, or point at a model directory)")
        try:
            tok = Tokenizer.from_file(str(file))
        except Exception as e:  # tokenizers raises bare Exception subclasses for every parse problem
            raise UserError(f"{file}: not a valid tokenizer.json ({str(e).splitlines()[0][:200]})") from None
        config = _read_config(file.parent)
        eos = config.get("eos_token", EOS)
        if isinstance(eos, dict):  # older files store an AddedToken dict
            eos = eos.get("content")
        return cls(tok, eos if isinstance(eos, str) else EOS, _chat_template(file.parent, config))

    def with_chat_template(self, template: str | None) -> "CodeTokenizer":
        return CodeTokenizer(self._tok, self.token_text(self.eos_id) if self.eos_id is not None else None, template)

    def save(self, directory: str | Path) -> Path:
        """Writes `directory/tokenizer.json` and tokenizer_config.json (EOS, chat template) atomically (the directory
        is created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _atomic_write(directory / FILE_NAME, self._tok.save)
        write_tokenizer_config(directory, self.token_text(self.eos_id) if self.eos_id is not None else None,
                               self.chat_template)
        return directory / FILE_NAME

    # ---- the contract -----------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch_fast(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int]) -> str:
        """Control ids render as their text (a FIM layout stays readable); callers stop before EOS."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def special_id(self, name: str) -> int | None:
        return self._vocab.get(name) if name in SPECIAL_TOKENS else None

    def token_text(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def token_bytes(self) -> list[bytes | None] | None:
        """The bytes each id spells (None for control tokens and unused ids), as the decoder renders it; None when
        the decoder is not byte-level, since then a token has no bytes of its own (token healing needs them)."""
        if not isinstance(self._tok.decoder, decoders.ByteLevel):
            return None
        byte_of = _byte_level_table()
        special = self.special_ids
        table: list[bytes | None] = [None] * self.vocab_size
        for text, i in self._vocab.items():
            if i in special:
                continue
            # ByteLevel's decoder maps each symbol back to its byte, and renders a token holding any other character
            # (an added token such as CodeGen's "    ") as its UTF-8 text.
            mapped = [byte_of.get(c) for c in text]
            table[i] = text.encode() if None in mapped else bytes(mapped)
        return table


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level symbols: printable latin-1 bytes stand for themselves, the others for chr(256 + n)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[chr(b)] = b
        else:
            table[chr(256 + extra)] = b
            extra += 1
    return table


def _atomic_write(path: Path, write) -> None:
    """write(tmp_path) into a temporary sibling of `path`, then renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        as_if_created(tmp)  # mkstemp's file is private (0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_config(directory: Path) -> dict:
    """A HuggingFace directory's tokenizer_config.json ({} when there is none or it is unreadable: the tokenizer
    still works, with EOS <|endoftext|> as ours and Qwen/CodeGen use, and no chat template)."""
    try:
        config = json.loads((directory / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _chat_template(directory: Path, config: dict) -> str | None:
    template = config.get("chat_template")
    if isinstance(template, list):  # several named templates: transformers uses the one named "default"
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    if not isinstance(template, str) and (directory / TEMPLATE_NAME).is_file():
        template = (directory / TEMPLATE_NAME).read_text()
    return template if isinstance(template, str) and template else None


def write_tokenizer_config(directory: Path, eos_token: str | None, chat_template: str | None) -> None:
    """tokenizer_config.json as transformers' AutoTokenizer reads it beside a tokenizer.json; keys already in the
    file (a HuggingFace model's own) are kept."""
    path = Path(directory) / CONFIG_NAME
    config = _read_config(Path(directory))
    config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
    config.setdefault("clean_up_tokenization_spaces", False)  # decode must give back the text that was encoded
    if eos_token is not None:
        config["eos_token"] = eos_token
    if chat_template is not None:
        config["chat_template"] = chat_template
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n"))


def check_vocab_fits(tokenizer: CodeTokenizer, vocab_size: int, where: str) -> None:
    if tokenizer.vocab_size > vocab_size:
        raise UserError(f"{where}: the tokenizer has ids up to {tokenizer.vocab_size - 1} but the model's vocab_size is "
                        f"{vocab_size}; use the tokenizer the model was trained with")


# ---- training ----------------------------------------------------------------------------------------------------
def _bpe_pieces(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """How the BPE model splits one pre-token: repeatedly apply the best-ranked merge (lowest rank first)."""
    pieces = list(word)
    while len(pieces) > 1:
        rank, i = min((ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:])))
        if rank == len(ranks):
            break
        pieces[i:i + 2] = [pieces[i] + pieces[i + 1]]
    return pieces


def _whitespace_merges(model: dict, runs: Sequence[str]) -> list[tuple[str, str]]:
    """The merges to append so that every run encodes as one token. Shortest runs first: a longer run's merges then
    rank below every merge a shorter run relies on, so they never change how a shorter run splits."""
    ranks = {tuple(m): r for r, m in enumerate(model["merges"])}
    added = []
    for run in sorted(runs, key=len):
        pieces = _bpe_pieces(run, ranks)
        while len(pieces) > 1:  # join left to right until the run is one token
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(ranks)
            added.append(pair)
            pieces[:2] = [pair[0] + pair[1]]
    return added


def _with_whitespace_tokens(tok: Tokenizer, vocab_size: int) -> Tokenizer:
    """Makes room for the missing whitespace runs by dropping the last-learned merges (their tokens are the rarest,
    and no merge builds on them), then appends merges that reach every run: same vocabulary size, all runs present."""
    data = json.loads(tok.to_str())
    model = data["model"]
    runs = ["".join(_BYTE_CHAR[c] for c in run) for run in WHITESPACE_TOKENS]
    while True:
        need = _whitespace_merges(model, runs)
        new_tokens = list(dict.fromkeys(a + b for a, b in need if a + b not in model["vocab"]))
        spare = len(model["vocab"]) + len(new_tokens) - vocab_size
        if spare <= 0:
            break
        for a, b in model["merges"][-spare:]:  # highest ids, highest ranks
            del model["vocab"][a + b]
        del model["merges"][-spare:]
    for token in new_tokens:  # the trainer numbers tokens in merge order, so ids stay contiguous
        model["vocab"][token] = len(model["vocab"])
    model["merges"] += [list(pair) for pair in need]
    return Tokenizer.from_str(json.dumps(data))


def code_pre_tokenizer(line_breaks_apart: bool = True) -> pre_tokenizers.PreTokenizer:
    """The pre-tokenizer of a new tokenizer. line_breaks_apart=False is GPT-2's rule (ByteLevel's built-in regex),
    which earlier tokenizers of this project used; bench_tokenizer.py measures one against the other."""
    if not line_breaks_apart:
        return pre_tokenizers.ByteLevel(add_prefix_space=False)
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PRE_TOKENIZER_PATTERN), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def new_bpe(vocab_size: int, texts: Iterable[str], whitespace_tokens: bool = True, show_progress: bool = False,
            line_breaks_apart: bool = True) -> Tokenizer:
    """A byte-level BPE of at most `vocab_size` ids (exactly, given enough text), control tokens included."""
    if vocab_size < 256 + len(SPECIAL_TOKENS) + len(WHITESPACE_TOKENS):
        raise UserError(f"vocab_size={vocab_size} is too small: a byte-level code BPE needs 256 byte tokens + "
                        f"{len(SPECIAL_TOKENS)} control tokens + room for {len(WHITESPACE_TOKENS)} whitespace tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = code_pre_tokenizer(line_breaks_apart)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  show_progress=show_progress, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    return _with_whitespace_tokens(tok, vocab_size) if whitespace_tokens else tok


def train_tokenizer(texts: Iterable[str], vocab_size: int, whitespace_tokens: bool = True,
                    show_progress: bool = False, line_breaks_apart: bool = True) -> CodeTokenizer:
    return CodeTokenizer(new_bpe(vocab_size, texts, whitespace_tokens, show_progress, line_breaks_apart))
