"""The speedrun's ablation: every row is scored, each trained row really changed what its label
says (and nothing trains twice), and the sampler rows reuse the base run."""

import json

import yaml

from difusion.experiments.ablation import CHOICES, ablation, run_name


def test_ablation_rows_change_what_they_say(tmp_path):
    from difusion.experiments import run_experiment

    exp = ablation("small")
    page = run_experiment(exp, tmp_path / "runs", tmp_path / "results", progress=False)
    rows = json.loads((page.parent / "results.json").read_text())
    assert [r["label"] for r in rows] == [c[1] for c in CHOICES]
    assert all(r["fid_domain"] > 0 for r in rows)

    # one run per distinct training recipe; the sampler group samples the base run
    trained = {r["run"] for r in rows}
    assert len(trained) == len({run_name("small", c[2], c[3]) for c in CHOICES})
    base = next(r["run"] for r in rows if r["group"] == "base")
    flow_samplers = [r for r in rows if r["group"] == "sampler" and "DDPM run" not in r["label"]]
    assert all(r["run"] == base for r in flow_samplers)
    assert len({(r["sampler"], r["steps"]) for r in rows if r["run"] == base}) == 6

    def config(label):
        run = next(r["run"] for r in rows if r["label"] == label)
        return yaml.safe_load(open(f"{run}/config.yaml"))

    assert config("batch 128")["train"]["batch_size"] == 128
    assert config("fp32 (no bf16 autocast)")["train"]["precision"] == "fp32"
    assert config("t ~ logit-normal(0, 1)")["flow"]["time_sampling"] == "logit-normal"
    v = config("DDPM, v-prediction + min-SNR-5")
    assert v["objective"] == "diffusion" and v["diffusion"]["prediction"] == "v"
    assert v["diffusion"]["weighting"] == "min-snr"
    assert config("flow matching, fm-fmnist as it is")["objective"] == "flow"
    combined = config("logit-normal t + 1 block + no attention (fashion-mnist without labels)")
    assert combined["flow"]["time_sampling"] == "logit-normal"
    assert combined["model"]["num_res_blocks"] == 1 and combined["model"]["attention_levels"] == []
    assert combined["model"]["class_conditional"] is False  # the row is the unconditional recipe
    # every run trained for the budget's minutes, not a step count
    assert all(config(c[1])["train"]["minutes"] == 0.03 for c in CHOICES)
