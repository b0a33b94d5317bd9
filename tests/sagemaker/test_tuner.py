"""`genai sweep RECIPE --sagemaker`: the captured CreateHyperParameterTuningJob request, a submission to moto,
status and download of the best job, the container's metric lines against the request's regexes, bad input."""

import io
import json
import os
import re
import tarfile
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from genai.errors import GenaiError
from genai.sagemaker import entry
from genai.sweeps import tuner
from tests.conftest import genai_cli
from tests.sagemaker.conftest import ROLE

pytestmark = pytest.mark.sagemaker

OBJECTIVE = "quickstart_addition/exact_match,strip"
SWEEP = f"""\
eval: {{tasks: [quickstart_addition], limit: 8}}
sweep:
  parameters:
    train.learning_rate: {{distribution: log_uniform, low: 1.0e-5, high: 1.0e-3}}
    lora.dropout: {{distribution: uniform, low: 0.0, high: 0.2}}
    lora.r: {{distribution: int, low: 4, high: 32}}
    train.lr_scheduler: {{distribution: choice, values: [cosine, linear]}}
  objective: {OBJECTIVE}
  trials: 12
  parallel: 3
  timeout_s: 7200
  prune: true
  seed: 7
"""


@pytest.fixture()
def sweep_recipe(sm_recipe) -> Path:
    sm_recipe.write_text(sm_recipe.read_text() + SWEEP)
    return sm_recipe


def dry_run(genai_main, recipe, *overrides) -> dict:
    # No AWS_ENDPOINT_URL: anything actually sent would go to AWS and trip the loopback guard.
    code, out, err = genai_main("sweep", recipe, "--sagemaker", "--dry-run", *overrides)
    assert code == 0, err[-3000:]
    return json.loads(out)


def ranges(config) -> dict:
    r = config["ParameterRanges"]
    out = {
        p["Name"]: ("continuous", p["MinValue"], p["MaxValue"], p["ScalingType"])
        for p in r["ContinuousParameterRanges"]
    }
    out |= {p["Name"]: ("integer", p["MinValue"], p["MaxValue"], p["ScalingType"]) for p in r["IntegerParameterRanges"]}
    return out | {p["Name"]: ("categorical", p["Values"]) for p in r["CategoricalParameterRanges"]}


def test_dry_run_request_field_by_field(genai_main, sweep_recipe):
    out = dry_run(genai_main, sweep_recipe)
    req = out["request"]
    assert out["dry_run"] is True and out["tuning_job"] == req["HyperParameterTuningJobName"]
    # named after the S3 folder of its data and output, to the second
    stamp = req["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"].split("/")[-2][-13:]
    assert req["HyperParameterTuningJobName"] == f"genai-smtest-{stamp}" and len(stamp) == 13
    cfg = req["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Bayesian"
    assert cfg["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": OBJECTIVE}
    assert cfg["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 12,
        "MaxParallelTrainingJobs": 3,
        "MaxRuntimeInSeconds": 7200,
    }
    assert cfg["TrainingJobEarlyStoppingType"] == "Auto" and cfg["RandomSeed"] == 7
    assert ranges(cfg) == {
        "train.learning_rate": ("continuous", "1e-05", "0.001", "Logarithmic"),
        "lora.dropout": ("continuous", "0.0", "0.2", "Linear"),
        "lora.r": ("integer", "4", "32", "Linear"),
        "train.lr_scheduler": ("categorical", ["cosine", "linear"]),
    }
    d = req["TrainingJobDefinition"]
    algo = d["AlgorithmSpecification"]
    assert algo["TrainingImage"].startswith(
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/huggingface-pytorch-training:2.8.0-transformers4.56.2-gpu"
    )
    assert algo["MetricDefinitions"] == [
        {"Name": OBJECTIVE, "Regex": r"genai-metric quickstart_addition/exact_match,strip=([-+0-9.eE]+)"},
        {"Name": "eval_loss", "Regex": r"genai-metric eval_loss=([-+0-9.eE]+)"},
        {"Name": "objective", "Regex": r"genai-metric objective=([-+0-9.eE]+)"},
    ]
    assert d["RoleArn"] == ROLE
    assert d["ResourceConfig"] == {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 1, "VolumeSizeInGB": 100}
    assert d["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert d["OutputDataConfig"]["S3OutputPath"].startswith("s3://genai-test/genai/genai-smtest-")
    assert (
        d["OutputDataConfig"]["S3OutputPath"].endswith("/output") and d["OutputDataConfig"]["CompressionType"] == "NONE"
    )
    assert d["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints" and d["CheckpointConfig"]["S3Uri"].endswith(
        "/checkpoints"
    )
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in d["InputDataConfig"]}
    assert set(channels) == {"train0", "eval0", "sm_drivers"}
    assert channels["train0"].endswith("/data/train0/") and channels["eval0"].endswith("/data/eval0/")
    assert channels["train0"].rsplit("/data/", 1)[0] == d["OutputDataConfig"]["S3OutputPath"].rsplit("/", 1)[0]
    static = d["StaticHyperParameters"]
    assert static["recipe"] == "smtest" and static["genai_objective"] == OBJECTIVE
    assert static["sagemaker_program"] == "sm_entry.py"
    assert static["sagemaker_submit_directory"].startswith("s3://genai-test/")
    assert not any("." in k for k in static)  # no swept (dotted) key is held fixed
    assert d["Environment"] == {"HF_TOKEN": "***", "WANDB_DISABLED": "true"}
    assert "hf_very_secret" not in json.dumps(out)
    assert {t["Key"]: t["Value"] for t in req["Tags"]} == {"team": "ml", "project": "genai"}
    assert out["estimate"]["max_jobs"] == 12
    assert out["estimate"]["max_usd_on_demand_all_jobs"] == pytest.approx(out["estimate"]["max_usd_on_demand"] * 12)
    assert [u.rsplit("/", 2)[-2:] for u in out["uploads"]] == [["train0", "train.jsonl"], ["eval0", "test.jsonl"]]


def test_tuning_job_names_fit_32_characters(sweep_recipe):
    from genai.recipe import load_recipe

    long = load_recipe(sweep_recipe, ["name=a-very-long-recipe-name-that-goes-on-and-on"])
    name = tuner.tuning_job_name(long, "genai-a-very-long-recipe-name-that-goes-o-20261129-101542")
    assert name == "genai-a-very-long-261129-101542" and len(name) <= 32


def test_dry_run_eval_loss_minimised_without_early_stopping(genai_main, sweep_recipe):
    req = dry_run(
        genai_main,
        sweep_recipe,
        "sweep.objective=eval_loss",
        "sweep.prune=false",
        "sweep.seed=0",  # the default, which the SDK alone would leave out
        "sweep.timeout_s=null",
    )["request"]
    cfg = req["HyperParameterTuningJobConfig"]
    assert cfg["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "eval_loss"}
    assert cfg["TrainingJobEarlyStoppingType"] == "Off" and cfg["RandomSeed"] == 0
    assert "MaxRuntimeInSeconds" not in cfg["ResourceLimits"]
    names = [m["Name"] for m in req["TrainingJobDefinition"]["AlgorithmSpecification"]["MetricDefinitions"]]
    assert names == ["eval_loss", "objective"]
    assert req["TrainingJobDefinition"]["StaticHyperParameters"]["genai_objective"] == "eval_loss"


def test_dry_run_direction_overrides_the_default(genai_main, sweep_recipe):
    cfg = dry_run(genai_main, sweep_recipe, "sweep.direction=minimize")["request"]["HyperParameterTuningJobConfig"]
    assert cfg["HyperParameterTuningJobObjective"]["Type"] == "Minimize"


# ----------------------------------------------------------------------------- a real submission (moto)
def sourcedir(s3, uri: str, dest: Path) -> Path:
    bucket, _, key = uri[len("s3://") :].partition("/")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def test_submit_uploads_and_creates_the_tuning_job(sweep_recipe, moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="genai-test")
    out = genai_cli("sweep", sweep_recipe, "--sagemaker", "--no-smoke")
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout)
    assert res["dry_run"] is False
    desc = boto3.client("sagemaker").describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=res["tuning_job"])
    assert desc["HyperParameterTuningJobConfig"] == res["request"]["HyperParameterTuningJobConfig"]
    sent = desc["TrainingJobDefinition"]
    assert sent["StaticHyperParameters"]["genai_objective"] == OBJECTIVE
    assert sent["Environment"]["HF_TOKEN"] == "hf_very_secret"  # sent as is; only the printed request is redacted
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="genai-test")["Contents"]}
    for uri in res["uploads"]:
        assert uri[len("s3://genai-test/") :] in keys
    # The code the training jobs run: genai, the job's recipe, the eval suites with their data, lm-eval.
    src = sourcedir(s3, sent["StaticHyperParameters"]["sagemaker_submit_directory"], tmp_path / "src")
    assert (src / "sm_entry.py").exists() and (src / "genai" / "sagemaker" / "entry.py").exists()
    suite = src / "genai" / "assets" / "eval" / "quickstart" / "quickstart_addition.yaml"
    import yaml

    assert yaml.safe_load(suite.read_text())["dataset_kwargs"]["data_files"] == {"test": "data/test.jsonl"}
    assert (suite.parent / "data" / "test.jsonl").stat().st_size > 0
    assert "lm-eval[api]" in (src / "requirements.txt").read_text()
    job_recipe = yaml.safe_load((src / "recipe.yaml").read_text())
    assert job_recipe["eval"]["suite_dirs"] == [] and job_recipe["sweep"]["objective"] == OBJECTIVE
    # status over the same API (moto fills in a fixed best job of its own)
    st = genai_cli("sweep", "status", res["tuning_job"], "--recipe", sweep_recipe)
    assert st.returncode == 0, st.stderr[-2000:]
    status = json.loads(st.stdout)
    assert status["tuning_job"] == res["tuning_job"] and status["status"] == "Completed"
    assert status["objective"] == {"metric": OBJECTIVE, "type": "Maximize"}
    assert status["training_jobs"]["Completed"] == 1 and status["best"]["training_job"] == "FakeTrainingJobName"


def test_an_eval_loss_sweep_ships_no_suites(sweep_recipe, moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="genai-test")
    out = genai_cli("sweep", sweep_recipe, "--sagemaker", "--no-smoke", "sweep.objective=eval_loss")
    assert out.returncode == 0, out.stderr[-3000:]
    static = json.loads(out.stdout)["request"]["TrainingJobDefinition"]["StaticHyperParameters"]
    src = sourcedir(s3, static["sagemaker_submit_directory"], tmp_path / "src")
    assert not (src / "genai" / "assets" / "eval").exists()
    assert "lm-eval" not in (src / "requirements.txt").read_text()


def test_status_of_an_unknown_tuning_job(moto_server, genai_main, sweep_recipe):
    code, out, err = genai_main("sweep", "status", "no-such-tuning", "--recipe", sweep_recipe)
    assert code == 2 and "no such tuning job: no-such-tuning" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- status and download (stubbed)
BEST = "genai-smtest-2611-003-abcd1234"
TUNING = "genai-smtest-261129-1018"
MODEL_URI = f"s3://genai-test/genai/smtest-x/output/{BEST}/output/model/"


def tuning_description(best: bool = True) -> dict:
    d = {
        "HyperParameterTuningJobName": TUNING,
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/{TUNING}",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": OBJECTIVE},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3},
        },
        "HyperParameterTuningJobStatus": "Completed" if best else "InProgress",
        "CreationTime": datetime(2026, 11, 29),
        "TrainingJobStatusCounters": {"Completed": 9, "InProgress": 0, "NonRetryableError": 1, "Stopped": 2},
        "ObjectiveStatusCounters": {"Succeeded": 9, "Pending": 0, "Failed": 1},
    }
    if best:
        d["BestTrainingJob"] = {
            "TrainingJobName": BEST,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{BEST}",
            "CreationTime": datetime(2026, 11, 29),
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"train.learning_rate": "0.00031", "lora.r": "16"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"Type": "Maximize", "MetricName": OBJECTIVE, "Value": 0.94},
        }
    return d


def training_description() -> dict:
    return {
        "TrainingJobName": BEST,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{BEST}",
        "ModelArtifacts": {"S3ModelArtifacts": MODEL_URI},
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 100},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": datetime(2026, 11, 29),
    }


def test_status_names_the_best_job_and_its_value():
    sm = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
        )
        st = tuner.status(sm, TUNING)
        stub.assert_no_pending_responses()
    assert st == {
        "tuning_job": TUNING,
        "status": "Completed",
        "failure": None,
        "objective": {"metric": OBJECTIVE, "type": "Maximize"},
        "training_jobs": {"Completed": 9, "InProgress": 0, "NonRetryableError": 1, "Stopped": 2},
        "objectives": {"Succeeded": 9, "Pending": 0, "Failed": 1},
        "best": {
            "training_job": BEST,
            "status": "Completed",
            "value": 0.94,
            "params": {"train.learning_rate": "0.00031", "lora.r": "16"},
        },
    }


def test_download_fetches_the_best_jobs_run(sweep_recipe, moto_server, tmp_path):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="genai-test")
    bucket, _, prefix = MODEL_URI[len("s3://") :].partition("/")
    files = {
        "manifest.json": json.dumps({"run_id": "x", "recipe": "smtest", "steps": 3}),
        "recipe.yaml": "name: smtest  # as the job saw it\n",
        "adapter/adapter_config.json": "{}",
        "eval/hf/table.json": json.dumps(
            {"rows": [{"task": "quickstart_addition", "metric": "exact_match,strip", "tuned": 0.94}]}
        ),
    }
    for name, text in files.items():
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=text.encode())
    sm = boto3.client("sagemaker", region_name="us-east-1")
    dest = tmp_path / "best"
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_hyper_parameter_tuning_job", tuning_description(), {"HyperParameterTuningJobName": TUNING}
        )
        stub.add_response("describe_training_job", training_description(), {"TrainingJobName": BEST})
        run = tuner.download_best(sm, s3, TUNING, dest, sweep_recipe.read_text())
        stub.assert_no_pending_responses()
    assert run == dest
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["sagemaker"] == {"job": BEST, "model_artifacts": MODEL_URI}
    assert manifest["sweep"] == {
        "id": TUNING,
        "trial": BEST,
        "params": {"train.learning_rate": "0.00031", "lora.r": "16"},
        "objective": OBJECTIVE,
        "value": 0.94,
    }
    assert (dest / "recipe.yaml").read_text() == sweep_recipe.read_text()  # the local recipe: local data paths
    assert (dest / "recipe.container.yaml").read_text() == files["recipe.yaml"]
    assert json.loads((dest / "eval" / "hf" / "table.json").read_text())["rows"][0]["tuned"] == 0.94


def test_download_before_any_job_finished_is_a_clear_error(tmp_path):
    sm = boto3.client("sagemaker", region_name="us-east-1")
    with Stubber(sm) as stub, pytest.raises(GenaiError, match="no best training job yet .InProgress."):
        stub.add_response(
            "describe_hyper_parameter_tuning_job",
            tuning_description(best=False),
            {"HyperParameterTuningJobName": TUNING},
        )
        tuner.download_best(sm, None, TUNING, tmp_path / "best")
    assert not (tmp_path / "best").exists()


def test_status_and_download_need_a_job_name_and_out(genai_main):
    code, _, err = genai_main("sweep", "status")
    assert code == 2 and "needs one tuning job name" in err
    code, _, err = genai_main("sweep", "download", TUNING)
    assert code == 2 and "--out" in err


# ----------------------------------------------------------------------------- the entry's metric lines
def amt_value(definitions: list[dict], name: str, log: str) -> list[float]:
    """What AMT reads from a log for metric `name`: every match of its regex's one group."""
    rx = next(d["Regex"] for d in definitions if d["Name"] == name)
    assert re.compile(rx).groups == 1
    return [float(v) for v in re.findall(rx, log)]


@pytest.mark.parametrize("value", [0.5, 1e-05, 2.25e-07, 12.0, -3.125, 0.0, 0.9400000000000001])
@pytest.mark.parametrize("name", ["eval_loss", "objective", OBJECTIVE, "addition_mc/acc,none"])
def test_metric_regexes_read_the_entrys_lines(name, value):
    line = entry.metric_line(name, value)
    assert line.startswith("genai-metric ")
    defs = tuner.metric_definitions(name) + [{"Name": "other", "Regex": entry.metric_regex("other")}]
    assert amt_value(defs, name, f"[1,mpirank:0] {line}\n") == [value]
    assert amt_value(defs, "other", line) == []  # no metric reads another's line


def test_non_finite_values_print_no_line(capsys):
    assert entry.metric_line("eval_loss", float("nan")) is None and entry.metric_line("x", float("inf")) is None
    entry.emit("eval_loss", float("nan"))
    assert capsys.readouterr().out == ""


def test_eval_losses_are_printed_as_training_logs_them(tmp_path, capsys):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"step": 5, "eval_loss": 9.0}) + "\n")  # an earlier attempt's (printed then)
    with entry.eval_loss_lines(metrics, poll_s=0.01):
        with open(metrics, "a") as f:
            for step, rec in enumerate([{"loss": 3.0}, {"eval_loss": 2.5}, {"loss": 2.0}, {"eval_loss": 1.25}]):
                f.write(json.dumps({"step": 10 + step, **rec}) + "\n")
                f.flush()
        f = open(metrics, "a")
        f.write('{"step": 20, "eval_lo')  # a torn last line: skipped
        f.close()
    log = capsys.readouterr().out
    assert amt_value(tuner.metric_definitions("eval_loss"), "eval_loss", log) == [2.5, 1.25]


def test_eval_loss_lines_off_on_other_ranks(tmp_path, capsys):
    metrics = tmp_path / "metrics.jsonl"
    with entry.eval_loss_lines(metrics, enabled=False, poll_s=0.01):
        metrics.write_text(json.dumps({"step": 1, "eval_loss": 1.0}) + "\n")
    assert capsys.readouterr().out == ""


def fake_run(tmp_path: Path, eval_loss, rows) -> Path:
    run = tmp_path / "model"
    (run / "eval" / "hf").mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps({"status": "complete", "metrics": {"eval_loss": eval_loss}}))
    (run / "eval" / "hf" / "table.json").write_text(json.dumps({"rows": rows}))
    return run


def test_objective_eval_loss_from_the_manifest(tmp_path, capsys):
    run = fake_run(tmp_path, 0.4375, [])
    assert entry.print_objective(run, "eval_loss") == 0.4375
    assert amt_value(tuner.metric_definitions("eval_loss"), "objective", capsys.readouterr().out) == [0.4375]


def test_objective_task_metric_scored_by_genais_eval(tmp_path, capsys, monkeypatch):
    from genai.evaluation import runner

    run = fake_run(tmp_path, 0.5, [])
    rows = [
        {"task": "quickstart_addition", "metric": "exact_match,strip", "base": 0.0, "tuned": 0.75},
        {"task": "quickstart_addition", "metric": "exact_match,none", "base": 0.0, "tuned": 0.5},
    ]
    scored = []

    def evaluate(target, overrides, **kw):  # what genai eval writes into the run
        scored.append(target)
        (Path(target) / "eval" / "hf" / "table.json").write_text(json.dumps({"rows": rows}))

    monkeypatch.setattr(runner, "evaluate", evaluate)
    assert entry.print_objective(run, OBJECTIVE) == 0.75 and scored == [str(run)]
    log = capsys.readouterr().out
    defs = tuner.metric_definitions(OBJECTIVE)
    assert amt_value(defs, OBJECTIVE, log) == [0.75] and amt_value(defs, "objective", log) == [0.75]
    assert "genai-metric quickstart_addition/exact_match,none=0.5" in log


def test_objective_not_produced_fails_the_job(tmp_path, monkeypatch):
    """entry.main's contract: the failure file says why, the exit is 2, no objective line."""
    from genai.training import launch

    opt, src = tmp_path / "opt_ml", tmp_path / "src"
    src.mkdir()
    (src / "recipe.yaml").write_text(
        "name: smjob\nmodel: {name_or_path: genai/tiny-llama}\n"
        f"data: {{train: [{{path: {tmp_path / 'train.jsonl'}, format: alpaca}}]}}\n"
    )
    (tmp_path / "train.jsonl").write_text('{"instruction": "1+1", "output": "2"}\n')

    def start_training(recipe, *, run_dir, checkpoint=None):  # a run without held-out data
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
        (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "metrics": {"eval_loss": None}}))

    monkeypatch.setattr(launch, "start_training", start_training)
    monkeypatch.setenv("GENAI_OPT_ML", str(opt))
    monkeypatch.setenv("SM_SOURCE_DIR", str(src))
    monkeypatch.setenv("SM_HPS", json.dumps({"genai_objective": "eval_loss", "train.learning_rate": 0.001}))
    monkeypatch.delenv("RANK", raising=False)
    assert entry.main() == 2
    failure = (opt / "output" / "failure").read_text()
    assert "sweep.objective" in failure and "no eval_loss" in failure


def test_a_tuning_jobs_entry_prints_losses_then_the_objective(tmp_path, monkeypatch, capsys):
    from genai.training import launch

    opt, src = tmp_path / "opt_ml", tmp_path / "src"
    src.mkdir()
    (tmp_path / "train.jsonl").write_text('{"instruction": "1+1", "output": "2"}\n')
    (src / "recipe.yaml").write_text(
        "name: smjob\nmodel: {name_or_path: genai/tiny-llama}\n"
        f"data: {{train: [{{path: {tmp_path / 'train.jsonl'}, format: alpaca}}]}}\n"
    )
    seen = {}

    def start_training(recipe, *, run_dir, checkpoint=None):
        seen["lr"] = recipe.train.learning_rate
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(run_dir / "metrics.jsonl", "a") as f:
            for step, loss in ((10, 0.75), (20, 0.625)):
                f.write(json.dumps({"step": step, "eval_loss": loss}) + "\n")
        (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "metrics": {"eval_loss": 0.625}}))

    monkeypatch.setattr(launch, "start_training", start_training)
    monkeypatch.setenv("GENAI_OPT_ML", str(opt))
    monkeypatch.setenv("SM_SOURCE_DIR", str(src))
    # as the container decodes the tuning job's hyperparameters (static and tuned)
    monkeypatch.setenv(
        "SM_HPS", json.dumps({"genai_objective": "eval_loss", "recipe": "smjob", "train.learning_rate": 0.0004})
    )
    monkeypatch.delenv("RANK", raising=False)
    assert entry.main() == 0
    log = capsys.readouterr().out
    defs = tuner.metric_definitions("eval_loss")
    assert seen["lr"] == 0.0004  # the tuned value reached the recipe
    assert amt_value(defs, "eval_loss", log) == [0.75, 0.625]  # the last one is AMT's final objective value
    assert amt_value(defs, "objective", log) == [0.625]
    assert log.index("eval_loss=0.625") < log.index("objective=0.625")


def test_a_plain_training_job_prints_no_objective(tmp_path, monkeypatch, capsys):
    from genai.training import launch

    opt, src = tmp_path / "opt_ml", tmp_path / "src"
    src.mkdir()
    (tmp_path / "train.jsonl").write_text('{"instruction": "1+1", "output": "2"}\n')
    (src / "recipe.yaml").write_text(
        "name: smjob\nmodel: {name_or_path: genai/tiny-llama}\n"
        f"data: {{train: [{{path: {tmp_path / 'train.jsonl'}, format: alpaca}}]}}\n"
    )

    def start_training(recipe, *, run_dir, checkpoint=None):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "manifest.json").write_text(json.dumps({"status": "complete", "metrics": {}}))

    monkeypatch.setattr(launch, "start_training", start_training)
    monkeypatch.setenv("GENAI_OPT_ML", str(opt))
    monkeypatch.setenv("SM_SOURCE_DIR", str(src))
    monkeypatch.setenv("SM_HPS", json.dumps({"recipe": "smjob"}))
    assert entry.main() == 0
    assert "objective" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- bad input: exit 2, nothing sent
@pytest.mark.parametrize(
    "overrides,message",
    [
        (["sweep=null"], "no sweep section"),
        (["sweep.objective=addition_mc/acc,none"], "task 'addition_mc' is not in eval.tasks"),
        (["sweep.objective=quickstart_addition/nope"], "produces no metric 'nope'"),
        (["sweep.objective=eval_loss", "data.eval=[]"], "eval_loss needs held-out data"),
        (["sagemaker.role=null"], "sagemaker.role must be set"),
        (["sagemaker.bucket=null"], "sagemaker.bucket must be set"),
        (["sweep.timeout_s=60"], "sweep.timeout_s: a tuning job runs at least 120 s"),
        (["eval.backend=vllm"], "eval.backend is vllm"),
    ],
)
def test_bad_input_exits_2_and_sends_nothing(moto_server, genai_main, sweep_recipe, overrides, message):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="genai-test")
    code, out, err = genai_main("sweep", sweep_recipe, "--sagemaker", "--no-smoke", *overrides)
    assert code == 2, err[-2000:]
    assert message in err and "Traceback" not in err
    assert boto3.client("sagemaker").list_hyper_parameter_tuning_jobs()["HyperParameterTuningJobSummaries"] == []
    assert s3.list_objects_v2(Bucket="genai-test").get("KeyCount") == 0


def test_dry_run_without_sagemaker_is_refused(genai_main, sweep_recipe):
    code, _, err = genai_main("sweep", sweep_recipe, "--dry-run")
    assert code == 2 and "--dry-run and --no-smoke go with --sagemaker" in err


@pytest.mark.slow
def test_the_shipped_job_trains_scores_and_prints_what_amt_reads(tmp_path):
    """The code a tuning job runs (genai from the shipped source, its eval suites inside it) on the tiny model:
    held-out losses while training, then genai's eval of the run, each line read by the request's regexes."""
    import subprocess
    import sys

    from genai.recipe import load_recipe
    from genai.sagemaker import submit
    from tests.conftest import GUARD, ROOT

    qs = ROOT / "recipes" / "data" / "quickstart"
    (tmp_path / "job.yaml").write_text(f"""\
name: smjob
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {qs / "train.jsonl"}, format: alpaca, limit: 200}}]
  eval: [{{path: {qs / "test.jsonl"}, format: alpaca, limit: 16}}]
  max_length: 64
train: {{max_steps: 6, micro_batch_size: 4, learning_rate: 1.0e-5, num_threads: 1, logging_steps: 2, eval_steps: 3,
        save_steps: 100, exact_match: {{limit: 0}}}}
eval: {{tasks: [quickstart_addition], limit: 4, batch_size: 4}}
sagemaker: {{role: "{ROLE}", bucket: b}}
sweep:
  parameters: {{train.learning_rate: {{distribution: log_uniform, low: 1.0e-4, high: 1.0e-2}}}}
  objective: {OBJECTIVE}
""")
    recipe = load_recipe(tmp_path / "job.yaml")
    plan = submit.plan(recipe, "job")
    src = submit.source_dir(recipe, plan, tmp_path / "src")
    tuner.ship_suites(recipe, src)
    opt = tmp_path / "opt_ml"
    for c in plan.channels:  # what SageMaker downloads into each channel
        (opt / "input" / "data" / c.name).mkdir(parents=True)
        (opt / "input" / "data" / c.name / c.local.name).write_bytes(c.local.read_bytes())
    env = {k: v for k, v in os.environ.items() if k != "GENAI_EVAL_DIR"}
    env |= {
        "GENAI_OPT_ML": str(opt),
        "SM_SOURCE_DIR": str(src),
        "PYTHONPATH": os.pathsep.join([str(src), str(GUARD)]),
        "SM_HPS": json.dumps({"recipe": "smjob", "genai_objective": OBJECTIVE, "train.learning_rate": 0.003}),
    }
    proc = subprocess.run(
        [sys.executable, "sm_entry.py"], cwd=src, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    defs = tuner.metric_definitions(OBJECTIVE)
    losses = amt_value(defs, "eval_loss", proc.stdout)
    assert len(losses) == 2 and all(v > 0 for v in losses)  # steps 3 and 6
    (value,) = amt_value(defs, OBJECTIVE, proc.stdout)
    assert amt_value(defs, "objective", proc.stdout) == [value] and 0.0 <= value <= 1.0
    manifest = json.loads((opt / "model" / "manifest.json").read_text())
    assert manifest["metrics"]["eval_loss"] == pytest.approx(losses[-1], abs=1e-6)
    table = json.loads((opt / "model" / "eval" / "hf" / "table.json").read_text())
    assert any(r["task"] == "quickstart_addition" and r["tuned"] == value for r in table["rows"])
    job_recipe = (opt / "model" / "recipe.yaml").read_text()
    assert "learning_rate: 0.003" in job_recipe  # the tuned value, not the recipe's own
