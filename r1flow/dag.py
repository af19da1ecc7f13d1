"""The R1 recipe as a table: every stage, where its model comes from, what it reads and writes, how
it is evaluated and what it asks of a cluster, declared once (DeepSeek-R1, arXiv:2501.12948).

Everything else is derived from :data:`STAGES` through :class:`DAG`:

- the Snakefile's rules (rules/*.smk) take their inputs, outputs, commands and resources from it
  (r1flow/harness/jobs.py);
- a stage run by hand takes its default ``io.init_model`` and ``io.upstream`` from it, so it reads
  what the DAG would give it and records the same lineage (r1flow/harness/entry.py);
- the report takes its checkpoint labels, their order and the RL runs from it.

A knob that chooses an edge (``general_sft.start_from``, ``rejection_sampling.sampler``,
``*_rm.start_from``) and the students move the DAG and the lineage; a bad value fails here, before
any job, naming the key and the values allowed (the base model, or an earlier stage's model).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from r1flow.config import ConfigError, config_view, student_checkpoint, with_student

BASE = "base"  # an edge to the base model: the pretrain stage's, or model.name_or_path (init=pretrained)
DATA = "data"
MODEL = "model"  # the output directory of a stage's Hugging Face checkpoint
LIGHT = "light"  # the job class of the jobs that compute nothing with torch (and do not import it)
SHARD_FILE = "prompts_{}.jsonl"  # a curation stage's prompt shard <i>, under its part directory shards/
# the embedded world's tokenizer, as save_pretrained writes it (the pretrain stage reads it)
TOKENIZER_FILES = ("tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json", "tokenizer/chat_template.jinja")
# all-scenario RL's non-reasoning prompts (training, then its in-training checks'): data file -> MLflow
# dataset context
GENERAL_FILES = {"general_train": "train", "safety_train": "train", "general_validation": "validation",
                 "safety_validation": "validation"}


def shard_name(path: str | Path) -> str:
    """The name ``<i>`` of prompt shard file ``.../prompts_<i>.jsonl`` (its samples' directory)."""
    return Path(path).stem.removeprefix(SHARD_FILE.split("{")[0])


class Kind(StrEnum):
    """What a stage does; stages of one kind share their runner (r1flow/runners/)."""

    data = "data"
    pretrain = "pretrain"
    sft = "sft"
    grpo = "grpo"
    curation = "curation"
    reward_model = "reward_model"
    evaluate = "evaluate"
    report = "report"


@dataclass(frozen=True)
class Eval:
    """How a stage's checkpoint is evaluated."""

    label: str | None  # its name in evaluations and in the report (None: the teacher's is not evaluated)
    student_label: str | None = None  # a student's version of it, e.g. "rl_only_{student}"
    template: str | None = None  # config key holding its prompt template (default: evaluate.template)
    general: bool = False  # trained on non-reasoning data: also evaluated on evaluate.general_splits


@dataclass(frozen=True)
class Stage:
    """One row of the recipe. Its name is its config section and its entry module ``stages.<name>``."""

    name: str
    kind: Kind
    phase: str  # the recipe phase it belongs to: rules/<phase>.smk
    paper: str  # where the paper describes it
    init: str | None = None  # its model comes from: BASE, a stage, or the config key naming one (has a '.')
    reads: tuple[str, ...] = ()  # other upstream stages whose outputs it reads (the data files: DAG.data_files)
    outputs: tuple[str, ...] = ()  # what its rule declares besides done.json; "model" is a directory (the
    # data stage's: the files its readers read, DAG.data_files)
    plots: str | None = None  # report category of its .png/.md outputs (snakemake --report)
    evaluated: Eval | None = None
    view: tuple[str, ...] = ()  # config sections its outputs depend on, besides its own section
    resources: str = "train"  # job class: conf resources.<class>
    teacher: bool = True  # run for the teacher model
    students: str | None = None  # also run for students: "all", or "rl_only" (rl_only_students)
    critical: bool = False  # scheduled ahead of side jobs (evaluations): the main chain, and R1-Zero, the longest
    # job of its branch (measured: left among the side jobs, it started 21 min into a tiny run and ended it)
    exclusive: bool = False  # every other job waits for it: it takes two cores when it can

    @property
    def module(self) -> str:
        return f"stages.{self.name}"

    @property
    def knob(self) -> str | None:
        """The config key that chooses this stage's starting model, if a knob does."""
        return self.init if self.init and "." in self.init else None

    @property
    def makes_model(self) -> bool:
        return MODEL in self.outputs

    def job_class(self, part: str | None = None) -> str:
        """The job class of its runs (conf resources.<class>): a curation stage's prompt shards and
        merge are light, like the data and report stages (they compute nothing with torch)."""
        return LIGHT if part in ("shards", "merge") else self.resources


TRAIN = ("model", "trainer")  # the view of a training stage: the model, the Trainer and its section
SAMPLE = ("model.dtype", "model.attn_implementation")  # the view of a sampling stage
RL_PLOTS, LM = "RL curves", (MODEL,)

STAGES: tuple[Stage, ...] = (
    Stage("data", Kind.data, "common", "§2.2.2, §2.3.1 (prompts, cold-start data)", resources=LIGHT,
          view=("model.init", "model.name_or_path"), critical=True),
    Stage("pretrain", Kind.pretrain, "reasoning", "the base model (the paper's is DeepSeek-V3-Base)",
          outputs=LM, evaluated=Eval("base", "base_{student}"), view=TRAIN, students="all", critical=True,
          exclusive=True),
    # R1-Zero's recipe is also the RL-only baseline of the distilled students (§4.1, Table 6: RL on
    # Qwen-32B-Base, no SFT)
    Stage("r1_zero", Kind.grpo, "reasoning", "§2.2 (R1-Zero), Table 1 (template), §4.1", init=BASE,
          outputs=(MODEL, "curves.png"), plots=RL_PLOTS,
          evaluated=Eval("r1_zero", "rl_only_{student}", template="r1_zero.template"), view=TRAIN, resources="rl",
          students="rl_only", critical=True),
    Stage("cold_start_sft", Kind.sft, "reasoning", "§2.3.1", init=BASE, outputs=LM,
          evaluated=Eval("cold_start_sft"), view=TRAIN, critical=True),
    Stage("reasoning_rl", Kind.grpo, "reasoning", "§2.3.2", init="cold_start_sft", outputs=(MODEL, "curves.png"),
          plots=RL_PLOTS, evaluated=Eval("reasoning_rl"), view=TRAIN, resources="rl", critical=True),
    Stage("rejection_sampling", Kind.curation, "curation", "§2.3.3", init="rejection_sampling.sampler",
          outputs=("reasoning_sft.jsonl", "report.json", "lengths.png"), plots="Curated data", view=SAMPLE,
          resources="sample", critical=True),
    Stage("general_sft", Kind.sft, "general", "§2.3.3", init="general_sft.start_from",
          reads=("rejection_sampling",), outputs=LM, evaluated=Eval("general_sft", general=True), view=TRAIN,
          critical=True),
    Stage("helpfulness_rm", Kind.reward_model, "general", "§2.3.4", init="helpfulness_rm.start_from",
          outputs=LM, view=TRAIN, critical=True),
    Stage("harmlessness_rm", Kind.reward_model, "general", "§2.3.4", init="harmlessness_rm.start_from",
          outputs=LM, view=TRAIN, critical=True),
    Stage("all_scenario_rl", Kind.grpo, "general", "§2.3.4", init="general_sft",
          reads=("helpfulness_rm", "harmlessness_rm"), outputs=(MODEL, "curves.png"), plots=RL_PLOTS,
          evaluated=Eval("all_scenario_rl", general=True), view=TRAIN, resources="rl", critical=True),
    Stage("distill_data", Kind.curation, "curation", "§2.4", init="distill_data.sampler",
          outputs=("reasoning_sft.jsonl", "report.json", "lengths.png"), plots="Curated data", view=SAMPLE,
          resources="sample", critical=True),
    Stage("distill", Kind.sft, "students", "§2.4, §4.1", init=BASE, reads=("distill_data",), outputs=LM,
          evaluated=Eval(None, "student_{student}", general=True), view=TRAIN, teacher=False, students="all",
          critical=True),
    Stage("evaluate", Kind.evaluate, "report", "§3 (pass@1 over k samples, cons@k)", outputs=(
          "metrics.json", "samples.jsonl", "pass_at_k.png"), plots="Evaluation", view=SAMPLE, resources="sample"),
    Stage("report", Kind.report, "report", "§3, §4.1, Tables 2, 5, 6",
          outputs=("results.md", "results.csv", "claims.md", "pass_at_1.png", "pass_at_k.png", "rl_curves.png",
                   "distill_vs_rl.png"), plots="Report", view=("r1_zero.eval_prompts",), resources=LIGHT),
)
BY_NAME = {s.name: s for s in STAGES}


@dataclass(frozen=True)
class Node:
    """A stage as it runs in one experiment: the teacher's, a student's, or one evaluation."""

    key: str  # its directory under results_dir: "cold_start_sft", "students/small/pretrain", "eval/base"
    stage: Stage
    student: str | None = None
    init: str | None = None  # key of the node whose model it starts from (None: none, or an external base)
    upstream: tuple[str, ...] = ()  # keys of the nodes it reads: data, its init, then the rest
    label: str | None = None  # the label of its checkpoint's evaluation (an evaluation: what it evaluates)
    template: str | None = None  # an evaluation: its prompt template
    general: bool = False  # an evaluation: also on evaluate.general_splits


def evaluate_label(stage: Stage, student: str | None) -> str | None:
    """The evaluation label of ``stage``'s checkpoint for the teacher or ``student`` (None: not evaluated)."""
    ev = stage.evaluated
    if ev is None:
        return None
    if student:
        return ev.student_label.format(student=student) if ev.student_label else None
    return ev.label


class DAG:
    """The nodes of one experiment's DAG, in the recipe's order, with their edges resolved."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self._student_cfgs: dict[str | None, DictConfig] = {}  # with_student's result, per student
        self._external_evals: dict[str, str | None] = {}  # label -> student (None: the teacher) of an external base
        self.results = str(cfg.results_dir)
        self.scratch = cfg.model.init == "scratch"
        self.nodes: dict[str, Node] = {}
        for stage in STAGES:
            if stage.teacher and stage.kind not in (Kind.evaluate, Kind.report):
                if stage.kind is Kind.pretrain and not self.scratch:
                    continue  # a real base model: the pipeline starts from model.name_or_path
                self._add(stage, None)
        for student in cfg.students:
            for group in ("all", "rl_only"):  # the distilled student first, then the RL-only baseline
                if group == "rl_only" and student not in cfg.rl_only_students:
                    continue
                for stage in STAGES:
                    if stage.students == group and not (stage.kind is Kind.pretrain and self.external(student)):
                        self._add(stage, student)
        self.evaluations = self._evaluations()
        for node in self.evaluations.values():
            self.nodes[node.key] = node
        evaluated = tuple(dict.fromkeys(n.upstream[-1] for n in self.evaluations.values() if n.init))
        self.nodes["report"] = Node("report", BY_NAME["report"], upstream=evaluated)

    # ---------------------------------------------------------------- building
    def cfg_of(self, student: str | None) -> DictConfig:
        """The config ``student``'s stages run with (None: the teacher's), made once: every node of
        a student reads it (read only)."""
        if student not in self._student_cfgs:
            self._student_cfgs[student] = with_student(self.cfg, student)
        return self._student_cfgs[student]

    def external(self, student: str | None) -> str | None:
        """The checkpoint the teacher (or ``student``) starts from, or None when the DAG pretrains it."""
        if student:
            return student_checkpoint(self.cfg, student)
        return None if self.scratch else str(self.cfg.model.name_or_path)

    def _resolve(self, name: str, student: str | None) -> str | None:
        """The node a reference to stage ``name`` (or BASE) means for ``student``: the student's own
        version when the student runs that stage, else the teacher's. None for an external base."""
        if name == BASE:
            name = "pretrain"
            if self.external(student):
                return None
        own = f"students/{student}/{name}" if student else name
        return own if own in self.nodes else name

    def _init_stage(self, stage: Stage) -> str | None:
        """The stage ``stage`` starts from, with its knob's value checked against what may be chosen."""
        if not stage.knob:
            return stage.init
        value = str(OmegaConf.select(self.cfg, stage.knob))
        allowed = [BASE] + [s.name for s in STAGES[: STAGES.index(stage)]
                            if s.teacher and s.kind in (Kind.sft, Kind.grpo)]
        if value not in allowed:
            raise ConfigError(stage.knob, f"{value!r} is not one of {', '.join(allowed)} (the base model or "
                                          "an earlier stage's language model)")
        return value

    def _add(self, stage: Stage, student: str | None) -> None:
        key = f"students/{student}/{stage.name}" if student else stage.name
        init_stage = self._init_stage(stage)
        init = self._resolve(init_stage, student) if init_stage else None
        reads = [self._resolve(r, student) for r in stage.reads]
        upstream = [] if stage.kind is Kind.data else [DATA]
        upstream += [k for k in (init, *reads) if k and k not in upstream]
        self.nodes[key] = Node(key, stage, student, init, tuple(upstream), evaluate_label(stage, student))

    def _evaluations(self) -> dict[str, Node]:
        """label -> the evaluation node of that checkpoint (the base first, in the recipe's order)."""
        out = {}
        evaluate = BY_NAME["evaluate"]
        for student in (None, *self.cfg.students):  # external base models are evaluated too
            if self.external(student):
                label = self._base_label(student)
                out[label] = Node(f"eval/{label}", evaluate, label=label, upstream=(DATA,),
                                  template=self.cfg.evaluate.template)
                self._external_evals[label] = student
        for node in list(self.nodes.values()):
            if node.label:
                ev = node.stage.evaluated
                template = OmegaConf.select(self.cfg, ev.template) if ev.template else self.cfg.evaluate.template
                out[node.label] = Node(f"eval/{node.label}", evaluate, init=node.key, upstream=(DATA, node.key),
                                       label=node.label, template=str(template), general=ev.general)
        return self._starts_on_run_templates(out)

    @staticmethod
    def _base_label(student: str | None) -> str:
        """The evaluation label of the teacher's (or ``student``'s) base model."""
        return BASE if student is None else evaluate_label(BY_NAME["pretrain"], student)

    def _starts_on_run_templates(self, evals: dict[str, Node]) -> dict[str, Node]:
        """``evals`` with, after each start's own, an evaluation of the checkpoint an RL run starts
        from on the run's template where the start is evaluated on another (R1-Zero's base:
        ``base_on_r1_zero``): "RL raised pass@1" then compares two checkpoints on one template."""
        extra: dict[str, Node] = {}
        for node in self.nodes.values():
            run = evals.get(node.label) if node.label and node.stage.kind is Kind.grpo else None
            if run is None:
                continue
            start_label = self.nodes[node.init].label if node.init else self._base_label(node.student)
            start = evals.get(start_label)
            if start and start.template != run.template:
                label = f"{start_label}_on_{run.template}"
                extra[start_label] = Node(f"eval/{label}", start.stage, init=start.init, upstream=start.upstream,
                                          label=label, template=run.template)
                if start_label in self._external_evals:
                    self._external_evals[label] = self._external_evals[start_label]
        out = {}
        for label, node in evals.items():
            out[label] = node
            if label in extra:
                out[extra[label].label] = extra[label]
        return out

    # ---------------------------------------------------------------- queries
    def node(self, stage: str, student: str | None = None) -> Node:
        """The node of ``stage`` for the teacher or ``student``; a config error if the DAG has none."""
        key = f"students/{student}/{stage}" if student else stage
        if key in self.nodes:
            return self.nodes[key]
        if stage not in BY_NAME:
            raise ConfigError("stage", f"{stage!r} is not a stage ({', '.join(BY_NAME)})")
        runs = [n.student for n in self.nodes.values() if n.stage.name == stage and n.student]
        if not student and runs:
            raise ConfigError("student", f"{stage} trains a student: name one of {', '.join(runs)} "
                                         f"(e.g. student={runs[0]})")
        if student:
            raise ConfigError("student", f"student {student!r} does not run {stage}"
                              + (f" (students that do: {', '.join(runs)})" if runs else ""))
        raise ConfigError("model.init", f"with model.init={self.cfg.model.init} the DAG has no {stage} stage "
                                        "(a pretrained base model is model.name_or_path)")

    def dir(self, key: str, part: str = "all", shard: str | None = None) -> str:
        """Node ``key``'s output directory; for a curation stage's ``part`` (r1flow/config/knobs.py:
        Part) the part's: ``shards/`` for the prompt shards, ``samples/<shard>/`` for one shard's
        samples (``shard``: its name, ``<i>`` of ``prompts_<i>.jsonl``)."""
        home = f"{self.results}/{key}"
        return {"shards": f"{home}/shards", "sample": f"{home}/samples/{shard}"}.get(part, home)

    def model(self, key: str | None, student: str | None = None) -> str:
        """The checkpoint of node ``key``; None: the teacher's or ``student``'s external base model."""
        return f"{self.dir(key)}/{MODEL}" if key else str(self.external(student))

    def init_model(self, node: Node) -> str | None:
        """What ``node`` starts from (an evaluation: what it evaluates), or None (built from scratch)."""
        if node.init or node.stage.init:
            return self.model(node.init, node.student)
        if node.stage.kind is Kind.evaluate and node.label in self._external_evals:  # an external base model's
            return self.model(None, self._external_evals[node.label])
        return None

    def data_files(self, node: Node, part: str = "all") -> dict[str, str]:
        """What ``node`` (a curation stage: its ``part``) reads of the data: name -> path, the data
        stage's files under ``io.data_dir`` (name ``train``: ``train.jsonl``) or a reward model's
        configured pairs. Its rule takes them as inputs and the data rule declares those under
        ``io.data_dir`` as its outputs, so that editing one reruns the stages that read it and no
        other (Snakemake compares the content of files up to 1 MB, the modification time of larger
        ones); the stage opens them with ``StageContext.data_file``."""
        cfg = self.cfg_of(node.student)
        stage, sec = node.stage, cfg.get(node.stage.name)
        names: list[str] = []
        if stage.kind is Kind.pretrain:
            names = [*TOKENIZER_FILES, "pretrain_corpus"]
        elif stage.kind is Kind.curation and part in ("all", "shards"):  # (its other parts read the shards)
            names = ["train"]
        elif stage.kind is Kind.sft:  # the cold start, or a curated set mixed with non-reasoning rows
            mixed = any(BY_NAME[r].kind is Kind.curation for r in stage.reads)
            names = (["general_sft"] if sec.general_frac > 0 else []) if mixed else ["cold_start"]
        elif stage.kind is Kind.grpo:
            names = ["train", *(["validation"] if sec.eval_every else [])]
            names += list(GENERAL_FILES) if sec.general_prompt_frac > 0 and sec.general_last_steps > 0 else []
        elif stage.kind is Kind.evaluate:
            names = [*cfg.evaluate.splits, *(cfg.evaluate.general_splits if node.general else [])]
        elif stage.kind is Kind.reward_model:
            return {"train": str(sec.train_data), "heldout": str(sec.heldout_data)}
        root = str(cfg.io.data_dir)
        return {n: f"{root}/{n}" if "/" in n else f"{root}/{n}.jsonl" for n in dict.fromkeys(names)}

    def upstream(self, node: Node) -> dict[str, str]:
        """Upstream stage name -> output directory: what ``node`` reads, and its lineage. Nodes of one
        stage (the report reads the teacher's and the students' pretraining, R1-Zero, distillation)
        go by their keys instead, so that none is lost."""
        names = [self.nodes[k].stage.name for k in node.upstream]
        return {name if names.count(name) == 1 else k: self.dir(k) for k, name in zip(node.upstream, names)}

    def view(self, node: Node) -> dict:
        """The resolved config ``node``'s outputs depend on (its own section, then its stage's view)."""
        return config_view(self.cfg_of(node.student), (node.stage.name, *node.stage.view))

    def rl_runs(self) -> dict[str, Node]:
        """The GRPO runs, by the name the report gives them (their evaluation label)."""
        return {n.label or n.key: n for n in self.nodes.values() if n.stage.kind is Kind.grpo}

    def students(self) -> list[str]:
        return list(self.cfg.students)
