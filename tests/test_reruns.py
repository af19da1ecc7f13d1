"""Exact reruns: an edit reruns the stages it changes and what depends on them, nothing else.

Each test edits a file of the finished smoke DAG's project copy, asserts the job plan of
``snakemake -n``, and restores the file (after which nothing is to be done again).
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from conftest import SMOKE_DAG, planned_jobs

# the stages downstream of the cold start: reasoning RL, both curations, general SFT, the reward
# models, all-scenario RL and the distilled students, and the evaluations of their 5 checkpoints
AFTER_COLD_START = {"reasoning_rl": 1, "sample": 4, "curate": 2, "general_sft": 1,
                    "helpfulness_rm": 1, "harmlessness_rm": 1, "all_scenario_rl": 1, "distill": 2, "evaluate": 5,
                    "report": 1, "all": 1}


@contextmanager
def edited(path: Path, old: str, new: str, append: bool = False):
    text = path.read_text()
    assert append or old in text, f"{old!r} not in {path}"
    path.write_text(text + new if append else text.replace(old, new, 1))
    try:
        yield
    finally:
        path.write_text(text)


def plan_after(proj: Path, file: str, old: str, new: str, append: bool = False) -> dict[str, int]:
    """The job plan with ``file`` edited; asserts that restoring it leaves nothing to do."""
    with edited(proj / file, old, new, append):
        plan = planned_jobs(proj)
    assert planned_jobs(proj) == {}, f"restoring {file} must leave nothing to do"
    return plan


def test_adding_a_reward_reruns_the_stages_that_use_rewards_and_their_descendants(smoke_dag):
    reward = '''

@reward("brevity")
def brevity(completions, items=None, lengths=None, truncated=None, **_) -> list[float]:
    """Shorter completions score higher."""
    return [-n / 100 for n in lengths]
'''
    # the GRPO stages and the curation stages (whose filters are reward functions) rerun; data,
    # pretraining, the cold start and the evaluations of their checkpoints do not move. (A dry run
    # lists a curation's shard jobs only once its shards checkpoint has run again.)
    plan = plan_after(smoke_dag.proj, "r1flow/sampling/rewards.py", "", reward, append=True)
    unlisted = {k: v for k, v in AFTER_COLD_START.items() if k != "sample"}
    assert plan == {**unlisted, "r1_zero": 1, "student_r1_zero": 1, "sample_shards": 2, "evaluate": 5 + 2}


def test_editing_a_student_reruns_that_student_only(smoke_dag):
    plan = plan_after(smoke_dag.proj, "conf/experiment/smoke.yaml", "half: {hidden_size: 16, intermediate_size: 32}",
                      "half: {hidden_size: 16, intermediate_size: 48}")
    assert plan == {"student_pretrain": 1, "distill": 1, "evaluate": 2, "report": 1, "all": 1}


def test_editing_the_tiny_worlds_tokenizer_reruns_everything(smoke_dag):
    plan = plan_after(smoke_dag.proj, "r1flow/world/tokenizer.py", "", "\n# an edit\n", append=True)
    assert plan == SMOKE_DAG


def test_editing_tracking_reruns_nothing(smoke_dag):
    assert plan_after(smoke_dag.proj, "tracking/stage.py", "", "\n# an edit\n", append=True) == {}


def test_editing_a_stage_default_in_the_schema_reruns_that_stage(smoke_dag):
    # evaluate.top_p is set by no experiment: its one place is the schema
    plan = plan_after(smoke_dag.proj, "r1flow/config/sampling.py", 'top_p: float = knob(0.95, "Nucleus sampling.", '
                      'paper="0.95 (§3)")', 'top_p: float = knob(0.9, "Nucleus sampling.", paper="0.95 (§3)")')
    assert plan == {"evaluate": 13, "report": 1, "all": 1}


def test_editing_a_stage_config_reruns_that_stage_and_its_descendants(smoke_dag):
    plan = plan_after(smoke_dag.proj, "conf/sizes/smoke.yaml", "cold_start_sft: {max_steps: 6,",
                      "cold_start_sft: {max_steps: 7,")
    assert plan == {**AFTER_COLD_START, "cold_start_sft": 1, "evaluate": 5 + 1}


def test_editing_a_stage_entry_or_a_shared_module_reruns_the_stages_that_run_it(smoke_dag):
    plan = plan_after(smoke_dag.proj, "stages/general_sft.py", "", "\n# an edit\n", append=True)
    assert plan == {"general_sft": 1, "helpfulness_rm": 1, "harmlessness_rm": 1, "all_scenario_rl": 1, "sample": 2,
                    "curate": 1, "distill": 2, "evaluate": 4, "report": 1, "all": 1}
    # the SFT module: pretraining and every SFT stage, and everything after them
    plan = plan_after(smoke_dag.proj, "r1flow/train/sft.py", "", "\n# an edit\n", append=True)
    assert plan == {k: v for k, v in SMOKE_DAG.items() if k not in ("data", "sample_shards")} | {"sample": 4}


def test_editing_a_data_file_in_place_reruns_the_stages_that_read_it(smoke_dag):
    """Rules depend on the data files their stages read (DAG.data_files), not on the data stage's
    completion: an edit reruns the readers of that file only, and restoring the file's content
    (newer, but with the checksum Snakemake recorded) reruns nothing."""
    # the hard split: only the evaluations read it, no training stage
    plan = plan_after(smoke_dag.proj, "results/smoke/data/hard.jsonl", "", "\n", append=True)
    assert plan == {"evaluate": 13, "report": 1, "all": 1}
    # the cold-start rows: the cold start and everything downstream of it
    plan = plan_after(smoke_dag.proj, "results/smoke/data/cold_start.jsonl", "", "\n", append=True)
    assert plan == {**AFTER_COLD_START, "cold_start_sft": 1, "evaluate": 5 + 1}


def test_running_snakemake_from_a_moved_venv_reruns_nothing(smoke_dag, tmp_path):
    """The interpreter's path is in no job's params or command (jobs run ``python`` from its directory,
    first on their PATH): a checkout or venv reached by another path (here a symlink to the venv)
    leaves nothing to do."""
    moved = tmp_path / "moved-venv"
    moved.symlink_to(Path(sys.executable).parent.parent)
    out = subprocess.run([str(moved / "bin" / "python"), "-m", "snakemake", "-n", "--cores", "2", "--config",
                          "experiment=smoke"], cwd=smoke_dag.proj, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Nothing to be done" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
