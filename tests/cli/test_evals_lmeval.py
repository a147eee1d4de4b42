"""lm-evaluation-harness results -> eval results, on a results dict shaped like the harness's."""

from loraledger.lmeval import results_to_evals

RESULTS = {
    "results": {
        "hellaswag": {
            "alias": "hellaswag",
            "acc,none": 0.2875,
            "acc_stderr,none": 0.0045,
            "acc_norm,none": 0.3125,
            "acc_norm_stderr,none": 0.0046,
        },
        "gsm8k": {
            "alias": "gsm8k",
            "exact_match,strict-match": 0.05,
            "exact_match_stderr,strict-match": 0.006,
            "exact_match,flexible-extract": 0.07,
            "exact_match_stderr,flexible-extract": "N/A",
        },
    },
    "versions": {"hellaswag": 1.0, "gsm8k": 3.0},
    "n-shot": {"hellaswag": 0, "gsm8k": 5},
    "n-samples": {
        "hellaswag": {"original": 10042, "effective": 100},
        "gsm8k": {"original": 1319, "effective": 1319},
    },
}


def test_metrics_become_evals_without_standard_errors() -> None:
    evals = results_to_evals(RESULTS, limit=100)
    assert sorted((e.label, e.metric, e.value) for e in evals) == [
        ("lm-eval gsm8k", "lm-eval:exact_match[flexible-extract]", 0.07),
        ("lm-eval gsm8k", "lm-eval:exact_match[strict-match]", 0.05),
        ("lm-eval hellaswag", "lm-eval:acc", 0.2875),
        ("lm-eval hellaswag", "lm-eval:acc_norm", 0.3125),
    ]


def test_each_task_is_a_dataset_named_by_its_setup() -> None:
    evals = results_to_evals(RESULTS, limit=100)
    datasets = {e.label: e.dataset for e in evals}
    hellaswag, gsm8k = datasets["lm-eval hellaswag"], datasets["lm-eval gsm8k"]
    assert hellaswag.digest != gsm8k.digest and hellaswag.digest.startswith("sha256:")
    assert (hellaswag.format, hellaswag.rows, hellaswag.source) == ("lm-eval", 100, "lm-eval:hellaswag")
    assert hellaswag.blob is None  # the harness owns the data; nothing is copied
    # another sample limit is another setup: its scores must not mix with these
    other = {e.label: e.dataset.digest for e in results_to_evals(RESULTS, limit=None)}
    assert other["lm-eval hellaswag"] != hellaswag.digest
    assert results_to_evals(RESULTS, limit=100)[0].dataset.digest in {hellaswag.digest, gsm8k.digest}


def test_empty_results_record_nothing() -> None:
    assert results_to_evals({"results": {}}) == []
    assert results_to_evals({}) == []
