"""What the Snakefile's rules are made of, derived from the stage table (r1flow/dag.py).

Snakemake tracks files and params, not the YAML under conf/ nor the Python a shell command runs.
So when the Snakefile is read, :class:`Jobs` composes the experiment once, validates it (reward
names included), resolves the DAG, and writes each node's config view to
``results/<name>/config/<node>.yaml`` — rewritten only when its content changes. Each rule gets its
view as an input file, its stage's code digest and its command line as params, and its edges as
input files: a real edit of a stage's config, code or edges reruns that stage and its descendants,
nothing else.

A rule's directives come from one :class:`Rule`. Paths hold wildcards where one rule serves several
nodes: ``{student}`` (a student's stages), ``{label}`` (evaluations), ``{curation}`` and
``{shard}`` (the curation stages' parts).
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from snakemake.io import directory, report

from r1flow.config import compose, validate
from r1flow.config.checks import TRAINING_CLASSES, ranks_per_node
from r1flow.dag import BY_NAME, DAG, DATA, MODEL, SHARD_FILE, Kind, Node, Stage
from r1flow.harness.code import code_digest
from r1flow.harness.files import write_json
from r1flow.sampling.rewards import check_rewards


def _name(path: str) -> str:
    """A path as the name of a rule's input or output (``tokenizer/tokenizer.json``: ``tokenizer_tokenizer_json``)."""
    return re.sub(r"\W", "_", path.removesuffix(".jsonl"))


CRITICAL = 10  # priority of the main chain (base -> ... -> students), ahead of side jobs (evaluations)
DONE = "done.json"


@dataclass
class Rule:
    """The directives of one rule: ``input`` is a function of the wildcards (``unpack`` it)."""

    input: Callable
    output: dict
    params: dict
    log: str
    benchmark: str
    threads: int = 1
    priority: int = 0
    resources: dict = field(default_factory=dict)
    wildcards: dict = field(default_factory=dict)  # wildcard -> the values it takes (a regex)


class Jobs:
    """The rules' directives for one experiment (``experiment``: what ``--config experiment=`` names)
    under one ``seed`` (``--config seed=``; None: the config's)."""

    def __init__(self, experiment: str, job_threads: int = 1, cores: int = 1, root: str | Path = ".",
                 seed: int | None = None):
        self.overrides = [f"experiment={experiment}"] + ([] if seed is None else [f"seed={seed}"])
        cfg = compose(self.overrides)
        validate(cfg)
        self.dag = DAG(cfg)
        for node in self.dag.nodes.values():
            if node.stage.kind is Kind.grpo:
                rms = {n for n in self.dag.upstream(node) if BY_NAME[n].kind is Kind.reward_model}
                check_rewards(node.stage.name, cfg[node.stage.name], rms)
        self.cfg, self.experiment, self.res = cfg, experiment, self.dag.results
        self.job_threads, self.cores = min(job_threads, cores), cores
        self.views = self._write_views(Path(root))

    def _write_views(self, root: Path) -> dict[str, str]:
        """node key -> path of its config view (the evaluations share the evaluate stage's view)."""
        paths = {}
        for key, node in self.dag.nodes.items():
            name = "evaluate" if node.stage.kind is Kind.evaluate else key
            path = f"{self.res}/config/{name}.yaml"
            text = yaml.safe_dump(self.dag.view(node), sort_keys=True)
            file = root / path
            if not file.is_file() or file.read_text() != text:
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_text(text)
            paths[key] = path
        return paths

    # ---------------------------------------------------------------- pieces of a rule
    def command(self, node: Node, out: str | None = None, upstream: dict | None = None, with_init: bool = True,
                **extra) -> str:
        """The interpreter's arguments ``-m stages.<stage> ...``: the experiment, the node's paths and
        edges (``upstream`` instead of its own, no starting model unless ``with_init``), and
        ``extra`` overrides. The interpreter is ``python`` on the jobs' PATH (rules/common.smk),
        kept out of the params, so a moved checkout or venv does not count as changed params."""
        out = out or self.dag.dir(node.key)
        args = [*self.overrides, f"hydra.run.dir={out}", f"io.out_dir={out}",
                f"io.data_dir={self.dag.dir(DATA)}"]
        if node.student:
            args.append(f"student={node.student}")
        init = self.dag.init_model(node) if with_init else None
        if init:
            args.append(f"io.init_model={init}")
        ups = self.dag.upstream(node) if upstream is None else upstream
        if ups:
            args.append("++io.upstream={" + ",".join(f"{k}:{v}" for k, v in ups.items()) + "}")
        args += [f"{k}={v}" for k, v in extra.items()]
        return f"-m {node.stage.module} " + " ".join(shlex.quote(a) for a in args)

    def inputs(self, node: Node, part: str = "all") -> dict[str, str]:
        """``node``'s rule inputs (a curation stage's: its ``part``'s): its config view, the data files
        it reads and the completion file of every other upstream node (none for the prompt shards,
        which split the data alone)."""
        files = {"cfg": self.views[node.key]}
        files |= {f"data_{_name(k)}": path for k, path in self.dag.data_files(node, part).items()}
        for key in node.upstream:
            if key != DATA and part != "shards":
                files[self.dag.nodes[key].stage.name] = f"{self.dag.dir(key)}/{DONE}"
        return files

    def data_outputs(self) -> dict[str, str]:
        """The data rule's outputs: every file under the data directory that a stage reads."""
        root = f"{self.dag.dir(DATA)}/"
        paths = {p for node in self.dag.nodes.values() for p in self.dag.data_files(node).values()}
        return {_name(p.removeprefix(root)): p for p in sorted(paths) if p.startswith(root)}

    def outputs(self, pattern: str, stage: Stage) -> dict:
        """What a node at ``pattern`` (its directory under results, wildcards allowed) declares."""
        out = self.data_outputs() if stage.kind is Kind.data else {}
        for name in stage.outputs:
            path, key = f"{self.res}/{pattern}/{name}", name.replace(".", "_")
            if name == MODEL:
                out[key] = directory(path)
            elif stage.plots and name.endswith((".png", ".md")):
                sub = next((p for p in pattern.split("/") if p.startswith("{")), None)  # e.g. {label}
                out[key] = report(path, category=stage.plots, subcategory=sub)
            else:
                out[key] = path
        return {**out, "done": f"{self.res}/{pattern}/{DONE}"}

    def ranks(self, job_class: str) -> tuple[int, int]:
        """(processes per node, nodes) of a job of ``job_class``: the trainer's for Lightning jobs."""
        nodes = self.cfg.trainer.num_nodes if job_class in TRAINING_CLASSES else 1
        return ranks_per_node(self.cfg, job_class), nodes

    def resources(self, stage: Stage, part: str | None = None) -> dict:
        """Cluster resources of the stage's job class, in the SLURM executor plugin's names: memory
        and GPUs per node, CPUs per task. A Lightning job on several devices or nodes is one task per
        device on each node (``--ntasks-per-node``), started by ``srun`` in the allocation (see
        :meth:`launcher`), which is what Lightning's SLURM environment expects."""
        cls = stage.job_class(part)
        r = self.cfg.resources[cls]
        out = {"cpus_per_task": r.cpus, "mem_mb": r.mem_mb, "runtime": r.runtime}
        if r.gpus:
            out["gres"] = f"gpu:{r.gpus}"
        tasks, nodes = self.ranks(cls)
        if tasks * nodes > 1:  # the plugin's "mpi" jobs: it leaves the launch of the tasks to the command
            out.update(mpi="srun", nodes=nodes, **({"tasks_per_node": tasks} if tasks > 1 else {"tasks": nodes}))
        return out

    def launcher(self, stage: Stage, part: str | None = None) -> str:
        """What starts a multi-process job's tasks inside a SLURM allocation: ``srun`` with one task per
        device; outside SLURM nothing, and Lightning starts its processes itself."""
        tasks, nodes = self.ranks(stage.job_class(part))
        if tasks * nodes == 1:
            return ""
        return f"${{SLURM_JOB_ID:+srun --nodes={nodes} --ntasks-per-node={tasks} --kill-on-bad-exit=1}} "

    def _rule(self, stage: Stage, pattern: str, find: Callable[..., Node], student: bool = False,
              inputs: Callable | None = None, outputs: dict | None = None, part: str | None = None,
              args: Callable[..., dict] = lambda wc: {}, wildcards: dict | None = None) -> Rule:
        """The rule of ``stage``'s nodes at ``pattern``: ``find(wildcards)`` is the node,
        ``args(wildcards)`` the command's extra keyword arguments (see :meth:`command`)."""
        return Rule(
            input=inputs or (lambda wc: self.inputs(find(wc))),
            output=outputs if outputs is not None else self.outputs(pattern, stage),
            params={"launcher": self.launcher(stage, part), "cmd": lambda wc: self.command(find(wc), **args(wc)),
                    "code": code_digest(stage.module)},
            log=f"{self.res}/logs/{pattern}.log",
            benchmark=f"{self.res}/benchmarks/{pattern}.tsv",
            threads=self.threads(stage, student),
            priority=self.priority(stage, student),
            resources=self.resources(stage, part),
            wildcards=wildcards or {},
        )

    def threads(self, stage: Stage, student: bool) -> int:
        """An exclusive teacher job takes two cores when there are two; every other job ``job_threads``."""
        return max(self.job_threads, min(2, self.cores)) if stage.exclusive and not student else self.job_threads

    def priority(self, stage: Stage, student: bool) -> int:
        """CRITICAL for the jobs of the main chain (the prompt shards of the curation stages too), 0 for
        side jobs (evaluations, the students' pretraining). Snakemake sums the priorities of the jobs
        it starts together and reserves no cores: an exclusive job (the teacher's pretraining, ready
        with the prompt shards and the students' pretraining when the data is) outranks as many
        critical jobs as would fill its cores, or it would wait for a core that one-core jobs keep
        taking (measured: the teacher waited 8 min). With the shards at 0 instead, reasoning RL's
        finished model waited 191 s for its prompt shards behind evaluations."""
        if not stage.critical or (student and stage.teacher):
            return 0
        threads = self.threads(stage, student)
        return CRITICAL * (threads // self.job_threads) + 1 if threads > self.job_threads else CRITICAL

    # ---------------------------------------------------------------- the rules
    def stage(self, name: str) -> Rule:
        """The teacher's rule of stage ``name``."""
        return self._rule(BY_NAME[name], name, lambda wc: self.dag.node(name))

    def student(self, name: str) -> Rule:
        """The rule of stage ``name`` for the students that run it (wildcard ``student``)."""
        students = "|".join(n.student for n in self.dag.nodes.values() if n.stage.name == name and n.student)
        return self._rule(BY_NAME[name], f"students/{{student}}/{name}", lambda wc: self.dag.node(name, wc.student),
                          student=True, wildcards={"student": students or "^$"})

    def evaluation(self) -> Rule:
        """The evaluation of checkpoint ``{label}``: on its own template, and on the general splits
        too where it was trained on non-reasoning data."""
        ecfg = self.cfg.evaluate

        def find(wc) -> Node:
            return self.dag.evaluations[wc.label]

        def args(wc) -> dict:
            splits = [*ecfg.splits, *(ecfg.general_splits if find(wc).general else [])]
            return {"io.label": wc.label, "evaluate.template": find(wc).template,
                    "evaluate.splits": "[" + ",".join(splits) + "]"}

        return self._rule(BY_NAME["evaluate"], "eval/{label}", find, args=args,
                          wildcards={"label": "|".join(self.dag.evaluations)})

    def curation(self, part: str, sampled: Callable | None = None) -> Rule:
        """A part of curation stage ``{curation}``: ``shards`` (a checkpoint: their number follows from
        the data), ``sample`` (shard ``{shard}``, one job each) or ``merge`` (of the shards
        ``sampled(wildcards)`` lists)."""
        stage = BY_NAME["rejection_sampling"]
        wildcards = {"curation": "|".join(n.key for n in self.dag.nodes.values() if n.stage.kind is Kind.curation)}

        def find(wc) -> Node:
            return self.dag.node(wc.curation)

        def shard(wc) -> str:
            return f"{self.dag.dir(wc.curation, 'shards')}/{SHARD_FILE.format(wc.shard)}"

        if part == "shards":
            return self._rule(stage, "{curation}/shards", find, part=part, args=lambda wc: {
                "out": self.dag.dir(wc.curation, part), "upstream": {DATA: self.dag.dir(DATA)}, "with_init": False,
                "io.part": part},
                inputs=lambda wc: self.inputs(find(wc), part),
                outputs={"shards": directory(self.dag.dir("{curation}", part))}, wildcards=wildcards)
        if part == "sample":
            base = self.dag.dir("{curation}", part, "{shard}")
            return self._rule(stage, "{curation}/samples/{shard}", find, part=part, args=lambda wc: {
                "out": self.dag.dir(wc.curation, part, wc.shard), "io.part": part, "io.shard": shard(wc),
                "io.label": f"shard{wc.shard}"}, inputs=lambda wc: {**self.inputs(find(wc), part), "shard": shard(wc)},
                outputs={"kept": f"{base}/kept.jsonl", "report": f"{base}/report.json", "done": f"{base}/{DONE}"},
                wildcards=wildcards)
        return self._rule(stage, "{curation}", find, part=part, args=lambda wc: {"io.part": part}, wildcards=wildcards,
                          inputs=lambda wc: {**self.inputs(find(wc), part), "shards": sampled(wc)})

    def report(self) -> Rule:
        """The report: every evaluation's metrics in, the table, plots, claims and registry out."""
        node = self.dag.nodes["report"]
        metrics = {f"eval_{label}": f"{self.dag.dir(n.key)}/metrics.json" for label, n in self.dag.evaluations.items()}
        return self._rule(node.stage, "report", lambda wc: node,
                          inputs=lambda wc: {"cfg": self.views["report"], **metrics})

    def seeds(self, seeds: list[int]) -> Rule:
        """Claims over this run and ``seeds``' (r1flow/report/seeds.py): every seed's report in (the
        other seeds' made before by ``--config seed=N``: no rule here makes them), the judgement out."""
        cfg = self.cfg.copy()
        dirs = {}
        for seed in seeds:
            cfg.seed = seed
            dirs[f"seed{seed}"] = f"{cfg.results_dir}/report/{DONE}"
        out = f"{self.res}/seeds"
        mine = [int(self.cfg.seed)] + [s for s in seeds if s != int(self.cfg.seed)]
        cmd = (f"-m r1flow.report.seeds --experiment {shlex.quote(self.experiment)} "
               f"--seeds {' '.join(map(str, mine))} --out {out}")
        return Rule(input=lambda wc: {"mine": f"{self.dag.dir('report')}/{DONE}", **dirs},
                    output={name: f"{out}/{name}" for name in ("claims.md", "results.md", "pass_at_1.png")},
                    params={"cmd": cmd, "launcher": "", "code": code_digest("r1flow.report.seeds")},
                    log=f"{self.res}/logs/seeds.log",
                    benchmark=f"{self.res}/benchmarks/seeds.tsv")

    def record_run(self, started: float) -> None:
        """After a run that ended with the report: its wall time (``report/pipeline.json``, which the
        README's figures are written from)."""
        done = Path(self.dag.dir("report")) / DONE
        if done.is_file() and done.stat().st_mtime >= started:
            write_json(done.parent / "pipeline.json", {"experiment": self.experiment, "started": started,
                                                       "wall_s": round(time.time() - started, 1)})

    def targets(self) -> list[str]:
        """What ``snakemake`` builds by default: every evaluation and the report."""
        return [f"{self.dag.dir(n.key)}/metrics.json" for n in self.dag.evaluations.values()] + [
            f"{self.dag.dir('report')}/{DONE}"]
