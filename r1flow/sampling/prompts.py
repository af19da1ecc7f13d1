"""The text a model is prompted with: its tokenizer's chat template, or the R1-Zero template."""

from __future__ import annotations

# The R1-Zero template (arXiv:2501.12948, Table 1): the R1-Zero branch trains and is evaluated on it
# instead of a chat template; the model's reasoning starts right after the opening <think>.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>. User: {prompt}. Assistant: <think>"
)


def render_prompt(tok, question: str, template: str = "chat") -> str:
    """The prompt of ``question``: the chat template with its generation prompt, or R1-Zero's."""
    if template == "r1_zero":
        return R1_ZERO_TEMPLATE.format(prompt=question)
    return tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)
