"""Reward models (§2.3.4): a language model with a scalar head, trained on preference data
in the common ``prompt, chosen, rejected`` JSONL form.

- ``pairwise`` (helpfulness): Bradley–Terry, loss −log σ(r_chosen − r_rejected); R1 scores the final
  summary only, so ``target=summary`` keeps the text after ``</think>``.
- ``pointwise`` (harmlessness): each chosen response is *safe* (1) and each rejected one *unsafe*
  (0); binary cross-entropy on the score; ``target=response`` scores the whole response.

The model is transformers' ``AutoModelForSequenceClassification`` with one label: the backbone of a
causal-LM checkpoint plus a linear score on the last non-pad token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from r1flow.train.sft import adamw_with_schedule
from r1flow.train.sharding import ShardedModule


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen - rejected).mean()


def pointwise_loss(scores: torch.Tensor, safe: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(scores, safe.float())


def scored_part(response: str, target: str) -> str:
    """What the reward model reads of a response: the summary after ``</think>`` or all of it."""
    if target == "summary":
        return response.rsplit("</think>", 1)[-1].strip()
    if target == "response":
        return response
    raise ValueError(f"config error: target must be 'summary' or 'response', got {target!r}")


def rm_text(tokenizer, prompt: str, response: str, target: str) -> str:
    """The chat-rendered (prompt, scored part of the response) the model scores."""
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": scored_part(response, target)}]
    return tokenizer.apply_chat_template(msgs, tokenize=False)


class PreferenceDataset(Dataset):
    """``prompt, chosen, rejected`` rows as token ids: pairs (pairwise) or labelled texts (pointwise)."""

    def __init__(self, tokenizer, rows: list[dict], mode: str, target: str, max_length: int):
        def ids(prompt, response):
            return tokenizer(rm_text(tokenizer, prompt, response, target), add_special_tokens=False,
                             truncation=True, max_length=max_length)["input_ids"]

        if mode == "pairwise":
            self.examples = [(ids(r["prompt"], r["chosen"]), ids(r["prompt"], r["rejected"])) for r in rows]
        elif mode == "pointwise":
            self.examples = [(ids(r["prompt"], r[key]), int(key == "chosen")) for r in rows
                             for key in ("chosen", "rejected")]
        else:
            raise ValueError(f"config error: mode must be 'pairwise' or 'pointwise', got {mode!r}")
        self.mode = mode

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, i):
        return self.examples[i]


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask


def preference_collate(pad_id: int, mode: str):
    """Right-padded batches; a pairwise batch holds the chosen rows, then the rejected rows."""

    def collate(examples):
        if mode == "pairwise":
            ids, mask = _pad([c for c, _ in examples] + [r for _, r in examples], pad_id)
            return {"input_ids": ids, "attention_mask": mask}
        ids, mask = _pad([x for x, _ in examples], pad_id)
        return {"input_ids": ids, "attention_mask": mask, "safe": torch.tensor([y for _, y in examples])}

    return collate


class RewardModule(ShardedModule):
    """Trains a scalar-head model pairwise or pointwise; logs loss and accuracy (train and val)."""

    def __init__(self, model, mode: str, optim, total_steps: int):
        super().__init__()
        self.model = model.train()
        self.mode, self.optim, self.total_steps = mode, optim, total_steps

    def scores(self, batch) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.squeeze(-1)

    def loss_and_accuracy(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.scores(batch)
        if self.mode == "pairwise":
            chosen, rejected = s.chunk(2)
            return bradley_terry_loss(chosen, rejected), (chosen > rejected).float().mean()
        return pointwise_loss(s, batch["safe"]), ((s > 0).long() == batch["safe"]).float().mean()

    def training_step(self, batch, batch_idx):
        loss, acc = self.loss_and_accuracy(batch)
        self.log_dict({"train/loss": loss.detach(), "train/accuracy": acc}, on_step=True, on_epoch=False,
                      sync_dist=self.trainer.world_size > 1)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self.loss_and_accuracy(batch)
        n = batch["input_ids"].shape[0]
        self.log_dict({"val/loss": loss, "val/accuracy": acc}, prog_bar=True, on_epoch=True, batch_size=n,
                      sync_dist=self.trainer.world_size > 1)

    def configure_optimizers(self):
        return adamw_with_schedule(self.model, self.optim, self.total_steps)


class RewardScorer:
    """A trained reward model as a reward function: scores (prompt, response) texts in batches."""

    def __init__(self, model, tokenizer, target: str, batch_size: int = 64, max_length: int = 256):
        self.model, self.tok, self.target = model.eval(), tokenizer, target
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def __call__(self, prompts: list[str], responses: list[str]) -> list[float]:
        out: list[float] = []
        pad = self.tok.pad_token_id
        for start in range(0, len(prompts), self.batch_size):
            texts = [rm_text(self.tok, p, r, self.target)
                     for p, r in zip(prompts[start : start + self.batch_size], responses[start : start + self.batch_size])]
            seqs = self.tok(texts, add_special_tokens=False, truncation=True, max_length=self.max_length)["input_ids"]
            ids, mask = _pad(seqs, pad)
            out += self.model(input_ids=ids.to(self.model.device),
                              attention_mask=mask.to(self.model.device)).logits.squeeze(-1).float().tolist()
        return out


def heldout_accuracy(scorer: RewardScorer, rows: list[dict], mode: str) -> dict:
    """Accuracy on held-out pairs, overall and per ``rejected_kind`` when rows carry one. Pairwise:
    r(chosen) > r(rejected); pointwise: the sign of the score tells safe from unsafe."""
    chosen = scorer([r["prompt"] for r in rows], [r["chosen"] for r in rows])
    rejected = scorer([r["prompt"] for r in rows], [r["rejected"] for r in rows])
    if mode == "pairwise":
        right = [float(c > r) for c, r in zip(chosen, rejected)]
    else:
        right = [(float(c > 0) + float(r <= 0)) / 2 for c, r in zip(chosen, rejected)]
    kinds: dict[str, list[float]] = {}
    for row, ok in zip(rows, right):
        kinds.setdefault(row.get("rejected_kind", "all"), []).append(ok)
    return {"accuracy": sum(right) / len(right), "pairs": len(rows),
            "by_rejected_kind": {k: sum(v) / len(v) for k, v in sorted(kinds.items())}}
