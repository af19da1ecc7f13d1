"""The embedded world's tokenizer: one token per small integer, per word, per symbol — in HF format.

A tiny model copies operands far more reliably when each integer in [-99, 99] is a single token
(docs/tiny_world.md), so the vocabulary holds every such integer, the words of the task templates, the
operators and the special tokens of the chat format. A number is the same token wherever it stands
("7" in the question, in a rewrite and in the answer), so the arithmetic facts learned in pretraining
apply to operands copied from a question; the spaces around an operator belong to the operator
(" + "), a word carries its leading space (" answer"). The decoder concatenates pieces, so
decode(encode(text)) == text exactly.

The chat template renders R1's format: the user turn, then the assistant turn opened with a
pre-filled ``<think>\\n`` — the model writes its reasoning, ``</think>``, a short summary with the
answer in ``<answer>`` tags, and ends with the end-of-turn token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from r1flow.sampling.prompts import R1_ZERO_TEMPLATE

BOS, EOS, PAD, UNK = "<|begin|>", "<|end|>", "<|pad|>", "<|unk|>"
USER, ASSISTANT = "<|user|>", "<|assistant|>"
TAGS = ["<think>", "</think>", "<answer>", "</answer>"]
SPECIALS = [PAD, UNK, BOS, EOS, USER, ASSISTANT]

# Pieces: a (signed) number of up to two digits (no space: one token per value), a word with its
# leading space, one symbol with the spaces around it, a newline, runs of spaces. Longer numbers
# split into two-digit pieces.
PIECE_PATTERN = r"-?\d{1,2}| ?[A-Za-z]+| ?[^\sA-Za-z\d] ?|\n| +"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}" + USER + "{{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}" + EOS + "\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "<think>\n{% endif %}"
)

_piece_re = re.compile(PIECE_PATTERN)
SUMMARY_WORDS = "The answer is ."  # the summary line of R1's readable format (r1flow/world/tasks.py)


def pieces(text: str) -> list[str]:
    return _piece_re.findall(text)


def build_tokenizer(corpus: Iterable[str], max_int: int = 99) -> PreTrainedTokenizerFast:
    """Build the number/word tokenizer; words and symbols are collected from ``corpus``."""
    vocab_list: list[str] = SPECIALS + TAGS + ["\n", " "]
    for n in range(-max_int, max_int + 1):
        vocab_list.append(str(n))
    vocab_list += [f"{n:02d}" for n in range(10)]  # second pieces of long numbers ("105" -> "10", "5")
    vocab_list = list(dict.fromkeys(vocab_list))
    seen = set(vocab_list)
    for text in [*corpus, SUMMARY_WORDS, R1_ZERO_TEMPLATE]:
        for tag in TAGS + SPECIALS:
            text = text.replace(tag, " ")
        for piece in pieces(text):
            core = piece.strip(" ")
            variants = [core, " " + core]  # a word or symbol may open a line or follow a space
            if core and not core[0].isalpha():
                variants += [core + " ", " " + core + " "]  # a symbol may have a space after it
            for p in variants:
                if p and p not in seen:
                    seen.add(p)
                    vocab_list.append(p)
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(PIECE_PATTERN), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        additional_special_tokens=[USER, ASSISTANT],
        clean_up_tokenization_spaces=False,
    )
    tok.add_tokens(TAGS)  # not "special": they stay in decoded text
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"
    return tok
