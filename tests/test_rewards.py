"""GRPO's reward functions (genai.rewards): the built-ins, your own module:function, the checks before
training and the errors during it. Fast: no model, no training."""

import math
import subprocess
import sys
import textwrap

import pytest

from genai.errors import GenaiError
from genai.recipe import GrpoSection
from genai.rewards import REWARDS, build_rewards, last_number, score
from tests.conftest import ROOT, genai_cli

QS = ROOT / "recipes" / "data" / "quickstart"


def rewards(*specs, trust=False):
    return build_rewards(GrpoSection(rewards=list(specs), trust_reward_code=trust))


def one(spec, completions, references=None, trust=False):
    (reward,) = rewards(spec, trust=trust)
    references = references if references is not None else [""] * len(completions)
    return reward(["prompt"] * len(completions), completions, references)


def error(*specs, trust=False) -> GenaiError:
    with pytest.raises(GenaiError) as exc:
        rewards(*specs, trust=trust)
    return exc.value


# ----------------------------------------------------------------------------- the built-ins


def test_every_builtin_is_documented():
    assert set(REWARDS) >= {"exact_match", "numeric", "regex", "length", "suite"}
    for d in REWARDS.values():
        assert d.description and "\n" not in d.description
        assert all(a.help for a in d.args)
    assert [(a.name, a.required, a.default) for a in REWARDS["regex"].args] == [
        ("pattern", True, None),
        ("mode", False, "fullmatch"),
    ]


def test_exact_match():
    refs = ["52", "52", "Paris", "52"]
    assert one({"name": "exact_match"}, [" 52\n", "52.", "paris", ""], refs) == [1.0, 0.0, 0.0, 0.0]
    assert one({"name": "exact_match", "args": {"ignore_case": True}}, ["PARIS "], ["Paris"]) == [1.0]


@pytest.mark.parametrize(
    "text,number",
    [
        ("The answer is 1,234.", "1234"),
        ("-3.50", "-3.5"),
        ("+7 apples", "7"),
        ("first 3, then 4", "4"),
        ("10-3", "3"),  # a minus between numbers is not a sign
        ("x = -2", "-2"),
        ("$1,000,000.25", "1000000.25"),
        ("1,2345", "2345"),  # not thousands commas: two numbers
        (".5", "0.5"),
        ("no number here", None),
    ],
)
def test_last_number(text, number):
    got = last_number(text)
    assert (None if got is None else got.normalize()) == (None if number is None else type(got)(number).normalize())


def test_numeric():
    completions = ["So it is 1,234.", "1234.0", "1233", "none", "12"]
    refs = ["1234", "1,234", "1234", "1234", "no number"]
    assert one({"name": "numeric"}, completions, refs) == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert one({"name": "numeric", "args": {"tolerance": 1}}, ["1233", "1232"], ["1234", "1234"]) == [1.0, 0.0]
    assert one({"name": "numeric", "args": {"tolerance": 0.1}}, ["3.05"], ["3"]) == [1.0]


def test_regex_fullmatch_and_search():
    completions = ["42", " 42", "<a>42</a>", "x\ny"]
    assert one({"name": "regex", "args": {"pattern": r"\d+"}}, completions) == [1.0, 0.0, 0.0, 0.0]
    search = {"name": "regex", "args": {"pattern": r"\d+", "mode": "search"}}
    assert one(search, completions) == [1.0, 1.0, 1.0, 0.0]
    assert one({"name": "regex", "args": {"pattern": "(?s)x.y"}}, ["x\ny"]) == [1.0]


def test_length_penalty():
    completions = ["", "abcd", "abcdef", "a" * 8, "a" * 20]
    assert one({"name": "length", "args": {"max_chars": 4}}, completions) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert not any(math.copysign(1, v) < 0 for v in one({"name": "length", "args": {"max_chars": 4}}, ["ab"]))


def test_suite_reward_uses_the_bundled_tasks_filters_and_metric():
    # quickstart_addition: remove_whitespace then take_first, then exact_match.
    completions = [" 52\n", "52", "52 apples", "53", ""]
    refs = ["52"] * 5
    assert one({"name": "suite", "args": {"task": "quickstart_addition"}}, completions, refs) == [1, 1, 0, 0, 0]
    named = {"name": "suite", "args": {"task": "quickstart_addition", "metric": "exact_match,strip"}}
    assert one(named, completions, refs) == [1, 1, 0, 0, 0]


def test_suite_reward_applies_extraction_filters_and_metric_kwargs(tmp_path, monkeypatch):
    suite = tmp_path / "eval" / "mine"
    suite.mkdir(parents=True)
    (suite / "boxed.yaml").write_text(
        textwrap.dedent(
            r"""
            task: reward_test_boxed
            dataset_path: json
            output_type: generate_until
            doc_to_text: "{{q}}"
            doc_to_target: "{{a}}"
            filter_list:
              - name: boxed
                filter:
                  - {function: regex, regex_pattern: 'ANSWER: *(\w+)'}
                  - {function: take_first}
            metric_list:
              - {metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true,
                 regexes_to_ignore: [","]}
            """
        )
    )
    monkeypatch.setenv("GENAI_EVAL_DIR", str(tmp_path / "eval"))
    completions = ["thinking... ANSWER: paris", "ANSWER:Rome", "Paris", "ANSWER: 1"]
    refs = ["Paris", "Paris", "Paris", "1,"]
    assert one({"name": "suite", "args": {"task": "reward_test_boxed"}}, completions, refs) == [1, 0, 0, 1]


@pytest.mark.parametrize(
    "args,field,needle",
    [
        ({"task": "quickstart_additon"}, "task", "not a bundled task (did you mean 'quickstart_addition'?)"),
        ({"task": "addition_mc"}, "task", "is a multiple_choice task"),
        ({"task": "quickstart_addition", "metric": "acc"}, "metric", "has no metric 'acc'"),
        ({"task": "quickstart_addition", "metric": "exact_match,nope"}, "metric", "has no filter 'nope'"),
        ({"task": 3}, "task", "must be a bundled task name"),
    ],
)
def test_suite_reward_refuses_what_it_cannot_score(args, field, needle):
    err = error({"name": "suite", "args": args})
    assert err.message.startswith(f"train.grpo.rewards.0.args.{field}: "), err.message
    assert needle in err.message


# ----------------------------------------------------------------------------- checks before training


def test_unknown_reward_suggests_the_closest_and_lists_the_builtins():
    err = error({"name": "exact_match"}, {"name": "exact"})
    assert err.message == "train.grpo.rewards.1.name: unknown reward 'exact' (did you mean 'exact_match'?)"
    assert all(name in err.hint for name in REWARDS)


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"name": "regex", "args": {"patern": "x"}}, "train.grpo.rewards.0.args.patern: reward 'regex' has no arg"),
        ({"name": "regex"}, "train.grpo.rewards.0.args.pattern: reward 'regex' needs this arg"),
        ({"name": "regex", "args": {"pattern": "(\\d+"}}, "train.grpo.rewards.0.args.pattern: '(\\\\d+' is not a"),
        ({"name": "regex", "args": {"pattern": "x", "mode": "match"}}, "train.grpo.rewards.0.args.mode: must be"),
        ({"name": "length", "args": {"max_chars": 0}}, "train.grpo.rewards.0.args.max_chars: must be at least 1"),
        ({"name": "length", "args": {"max_chars": True}}, "train.grpo.rewards.0.args.max_chars: must be a whole"),
        ({"name": "numeric", "args": {"tolerance": -1}}, "train.grpo.rewards.0.args.tolerance: must be a finite"),
        ({"name": "exact_match", "args": {"ignore_case": "yes"}}, "train.grpo.rewards.0.args.ignore_case: must be"),
        ({"name": "exact_match", "weight": float("nan")}, "train.grpo.rewards.0.weight: must be a finite number"),
    ],
)
def test_bad_args_name_their_field(spec, message):
    assert error(spec).message.startswith(message)


def test_unknown_arg_suggests_and_lists_the_args():
    err = error({"name": "regex", "args": {"patern": "x"}})
    assert "(did you mean 'pattern'?)" in err.message
    assert "pattern (required)" in err.hint and "mode: fullmatch" in err.hint


def test_every_problem_is_reported_at_once():
    err = error({"name": "exact"}, {"name": "regex"}, {"name": "length", "args": {"max_chars": 2}})
    assert "train.grpo.rewards.0.name" in err.message and "train.grpo.rewards.1.args.pattern" in err.message
    assert "rewards.2" not in err.message


def test_labels_are_unique_and_metric_safe():
    got = rewards({"name": "exact_match"}, {"name": "numeric"}, {"name": "exact_match"}, {"name": "exact_match"})
    assert [r.label for r in got] == ["exact_match", "numeric", "exact_match_2", "exact_match_3"]


def test_score_is_the_weighted_total():
    got = rewards({"name": "exact_match", "weight": 2.0}, {"name": "length", "weight": 0.5, "args": {"max_chars": 2}})
    total, each = score(got, ["p", "p"], ["12", "abc"], ["12", "12"])
    assert each == {"exact_match": [1.0, 0.0], "length": [0.0, -0.5]}
    assert total == [2.0, -0.25]


# ----------------------------------------------------------------------------- your own function


@pytest.fixture()
def own(tmp_path, monkeypatch):
    """Write a module of reward functions into tmp_path (importable by its unique name)."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_own_function_with_args(own):
    mod = own(
        "reward_mod_ok",
        """
        def has_word(prompts, completions, references, word, bonus=1.0):
            return [bonus if word in c else 0 for c in completions]

        NOT_A_FUNCTION = 3
        """,
    )
    got = rewards(
        {"name": f"{mod}:has_word", "args": {"word": "cat"}},
        {"name": f"{mod}:has_word", "args": {"word": "dog", "bonus": 2}},
        trust=True,
    )
    assert [r.label for r in got] == ["has_word", "has_word_2"]
    total, each = score(got, ["p"] * 3, ["a cat", "a dog", "cat and dog"], ["", "", ""])
    assert each == {"has_word": [1.0, 0.0, 1.0], "has_word_2": [0.0, 2.0, 2.0]}
    assert total == [1.0, 2.0, 3.0]
    assert error({"name": f"{mod}:has_word"}, trust=True).message == (
        f"train.grpo.rewards.0.args.word: reward '{mod}:has_word' needs this arg"
    )
    assert error({"name": f"{mod}:has_word", "args": {"word": "x", "wrod": 1}}, trust=True).message.startswith(
        f"train.grpo.rewards.0.args.wrod: reward '{mod}:has_word' has no arg 'wrod'"
    )
    assert "is a int, not a function" in error({"name": f"{mod}:NOT_A_FUNCTION"}, trust=True).message


def test_own_function_needs_trust(own):
    mod = own("reward_mod_untrusted", "raise SystemExit('imported without trust')\n")
    specs = ({"name": "exact_match"}, {"name": "numeric"}, {"name": f"{mod}:score"})
    err = error(*specs)
    assert err.message == (
        f"train.grpo.rewards.2.name: '{mod}:score' is your own Python code; set train.grpo.trust_reward_code: true "
        "to run it"
    )
    assert mod not in sys.modules


def test_own_function_missing_module_or_function(own):
    err = error({"name": "reward_mod_nowhere:score"}, trust=True)
    assert err.message == "train.grpo.rewards.0.name: no module named 'reward_mod_nowhere'"
    assert "current folder" in err.hint
    mod = own("reward_mod_other", "def scores(prompts, completions, references):\n    return [0.0] * len(prompts)\n")
    err = error({"name": f"{mod}:score"}, trust=True)
    assert err.message.startswith(f"train.grpo.rewards.0.name: module '{mod}' (")
    assert err.message.endswith("has no function 'score' (did you mean 'scores'?)")
    broken = own("reward_mod_broken", "import reward_mod_not_installed\n")
    err = error({"name": f"{broken}:score"}, trust=True)
    assert err.message.startswith(f"train.grpo.rewards.0.name: importing '{broken}' failed: ModuleNotFoundError")


def test_own_function_with_a_wrong_signature(own):
    mod = own("reward_mod_sig", "def score(completions):\n    return [0.0]\n")
    err = error({"name": f"{mod}:score"}, trust=True)
    assert err.message.startswith(f"train.grpo.rewards.0.name: '{mod}:score' takes (completions); a reward takes")


# ----------------------------------------------------------------------------- errors in training


def test_a_raising_function_names_the_reward_the_error_and_the_completion(own):
    mod = own(
        "reward_mod_raises",
        """
        def score(prompts, completions, references):
            return [float(c) for c in completions]
        """,
    )
    (reward,) = rewards({"name": "exact_match"}, {"name": f"{mod}:score"}, trust=True)[1:]
    with pytest.raises(GenaiError) as exc:
        reward(["p", "p"], ["x" * 200, "1"], ["1", "1"])
    msg = exc.value.message
    assert msg.startswith(f"train.grpo.rewards.1 '{mod}:score': failed on a batch starting with the completion 'xxx")
    assert "ValueError: could not convert string to float: 'xxx" in msg and f"(at {mod}.py:3 in " in msg
    assert len(msg) < 500  # the completion and the error are shortened
    assert reward(["p"], ["2.5"], ["1"]) == [2.5]


@pytest.mark.parametrize(
    "body,needle",
    [
        ("return [1.0]", "returned 1 values for 2 completions (the first: 'first')"),
        ("return [1.0, float('nan')]", "returned nan (not finite) for the completion 'second'"),
        ("return [1.0, 'good']", "returned 'good' (not a number) for the completion 'second'"),
        ("return [1.0, None]", "returned None (not a number) for the completion 'second'"),
        ("return 1.0", "returned a float, not a list of numbers"),
        ("return [True, 2]", None),  # bools and ints are numbers
    ],
)
def test_bad_return_values_name_the_reward(own, body, needle):
    mod = own("reward_mod_ret", f"def score(prompts, completions, references):\n    {body}\n")
    (reward,) = rewards({"name": f"{mod}:score"}, trust=True)
    if needle is None:
        assert reward(["p", "p"], ["first", "second"], ["r", "r"]) == [1.0, 2.0]
        return
    with pytest.raises(GenaiError) as exc:
        reward(["p", "p"], ["first", "second"], ["r", "r"])
    assert exc.value.message == f"train.grpo.rewards.0 '{mod}:score': {needle}"


# ----------------------------------------------------------------------------- the CLI

GRPO_RECIPE = f"""
name: grpo-bad-reward
model: {{name_or_path: genai/tiny-llama}}
data:
  train: [{{path: {QS}/train.jsonl, format: alpaca}}]
  eval: [{{path: {QS}/test.jsonl, format: alpaca}}]
  max_length: 64
train:
  method: grpo
  max_steps: 2
  grpo:
    rewards:
      - {{name: exact_match}}
      - {{name: regex, args: {{pattern: "(\\\\d+"}}}}
"""


def test_genai_validate_names_a_bad_reward(tmp_path):
    recipe = tmp_path / "grpo.yaml"
    recipe.write_text(GRPO_RECIPE)
    proc = genai_cli("validate", recipe, f"train.output_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'c'}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "train.grpo.rewards.1.args.pattern: '(\\\\d+' is not a valid regular expression" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_genai_rewards_lists_the_builtins_without_torch():
    code = (
        "import sys; sys.argv = ['genai', 'rewards']\n"
        "from genai.cli import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules and 'lm_eval' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for name in REWARDS:
        assert f"\n{name} " in "\n" + proc.stdout
    assert "pattern (required)" in proc.stdout and "trust_reward_code" in proc.stdout
