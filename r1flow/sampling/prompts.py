"""The text a model is prompted with: its tokenizer's chat template, or the R1-Zero template; and
what a chat template does at the start of the assistant's turn (does it pre-fill ``<think>``?).

The answer format (``data.answer_format``) decides what the prompt asks for: R1's ``<answer>`` tags,
which the tiny world's chat format and the R1-Zero template state, or ``\\boxed{}``, which math models
are trained to write and which the user's turn asks for in DeepSeek-R1's recommended wording.
"""

from __future__ import annotations

import re

# The R1-Zero template (arXiv:2501.12948, Table 1): the R1-Zero branch trains and is evaluated on it
# instead of a chat template; the model's reasoning starts right after the opening <think>.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {prompt}. Assistant: <think>"
)
# The same template when answers are boxed: the reasoning in <think> tags, the final answer in \boxed{}.
R1_ZERO_BOXED_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process is enclosed within <think> </think> tags and the final answer "
    "within \\boxed{{}}, i.e., <think> reasoning process here </think> The answer is \\boxed{{answer here}}. "
    "User: {prompt}. Assistant: <think>"
)
# What the user's turn adds when answers are boxed (DeepSeek-R1's usage recommendation for math).
BOXED_INSTRUCTION = "\nPlease reason step by step, and put your final answer within \\boxed{}."
_PREFILL_RE = re.compile(r"<think>\s*$")


def summary_line(answer: str, answer_format: str = "tags") -> str:
    """The summary closing a response in R1's readable format, with the final answer in the format
    the data asks for: 'The answer is <answer>42</answer>.' or 'The answer is \\boxed{42}.'"""
    return f"The answer is \\boxed{{{answer}}}." if answer_format == "boxed" else f"The answer is <answer>{answer}</answer>."


def render_prompt(tok, question: str, template: str = "chat", answer_format: str = "tags") -> str:
    """The prompt of ``question``: the chat template with its generation prompt, or R1-Zero's."""
    if template == "r1_zero":
        zero = R1_ZERO_BOXED_TEMPLATE if answer_format == "boxed" else R1_ZERO_TEMPLATE
        return zero.format(prompt=question)
    content = user_content({"question": question, "answer_format": answer_format})
    return tok.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)


def user_content(item: dict) -> str:
    """The user's turn for a task row: its question, and the request for a boxed answer if the row
    asks for one (SFT rows carry the same turn the model is prompted with in RL and evaluation)."""
    fmt = item.get("answer_format", "tags")
    return item["question"] + BOXED_INSTRUCTION if fmt == "boxed" else item["question"]


def item_prompt(tok, item: dict, template: str = "chat") -> str:
    """The prompt of a task row, in the answer format the row asks for."""
    return render_prompt(tok, item["question"], template, item.get("answer_format", "tags"))


def _render(tok, messages: list[dict], generation_prompt: bool) -> str:
    try:
        return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    except (ValueError, TypeError) as e:
        raise ValueError(f"config error: model: the tokenizer of {tok.name_or_path!r} has no usable chat "
                         f"template ({e})") from e


def think_prefill(tok) -> str:
    """What the chat template's generation prompt writes of the assistant's turn itself: its
    trailing ``<think>`` and whitespace (R1's and R1-Distill's templates), or '' (Qwen's, Llama's).
    Sampled responses lack it; an SFT row made from one must write it back. A template without a
    generation prompt is a config error: nothing would tell the model that its turn begins."""
    user = [{"role": "user", "content": "x"}]
    prompt = _render(tok, user, True)
    if prompt == _render(tok, user, False):
        raise ValueError(f"config error: model: the chat template of {tok.name_or_path!r} adds no generation "
                         "prompt (add_generation_prompt changes nothing)")
    found = _PREFILL_RE.search(prompt)
    return found.group(0) if found else ""


def stop_token_ids(tok, generation_config=None) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS, the generation config's EOS ids, and the
    token the chat template closes an assistant turn with (``<|im_end|>`` for ChatML, whose base
    checkpoints' EOS is ``<|endoftext|>``) — SFT teaches that token, so sampling must stop at it."""
    ids = [tok.eos_token_id]
    gen_eos = getattr(generation_config, "eos_token_id", None)
    ids += gen_eos if isinstance(gen_eos, list) else [gen_eos]
    if tok.chat_template:
        marker = "\u2063end\u2063"  # text no template writes: whatever follows it closes the turn
        turn = _render(tok, [{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}], False)
        after = turn.split(marker, 1)[1] if marker in turn else ""
        first = tok(after, add_special_tokens=False)["input_ids"][:1]
        if first and first[0] in set(tok.all_special_ids) | set(tok.added_tokens_decoder):
            ids += first
    return list(dict.fromkeys(i for i in ids if i is not None))
