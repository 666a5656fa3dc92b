"""Rules share one interface; truncation at k >= T is BPTT; training resumes exactly."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from neurosim.cli import main  # noqa: E402
from training.layers import from_network  # noqa: E402
from training.nets import recurrent_network  # noqa: E402
from neurosim.errors import NetworkError  # noqa: E402
from training.rules import Batch, make_rule, parse_bytes  # noqa: E402
from training.trainer import TrainConfig, train  # noqa: E402


def _batch(T=50, B=3, n_in=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, n_in, generator=g, dtype=torch.float64) < 0.25).double()
    return Batch(x, torch.tensor([0, 1, 2])[:B], torch.arange(T) >= T - 15)


def _grads(net, rule, batch):
    m = from_network(net, dtype=torch.float64)
    out = rule.backward(m, batch)
    return out, {k: p.grad.clone() for k, p in m.weights.items()}


@pytest.mark.parametrize("model", ["lif", "alif"])
def test_tbptt_with_k_at_least_T_is_bptt_and_shorter_k_is_not(model):
    net = recurrent_network(8, 24, 3, model=model, seed=2)
    batch = _batch()
    ref, g_ref = _grads(net, make_rule("bptt"), batch)
    full, g_full = _grads(net, make_rule("tbptt", k=50), batch)
    short, g_short = _grads(net, make_rule("tbptt", k=5), batch)
    assert ref.loss == full.loss == pytest.approx(short.loss, rel=1e-12)  # same forward pass
    for k in g_ref:
        assert torch.equal(g_ref[k], g_full[k])
    rel = (g_ref["in_hidden"] - g_short["in_hidden"]).norm() / g_ref["in_hidden"].norm()
    assert rel > 0.05  # truncation really drops long paths


def test_rule_errors_name_the_option():
    from neurosim.errors import NetworkError

    for kw, field in [(dict(name="tbptt"), "k"), (dict(name="budgeted"), "budget"), (dict(name="rtrl"), "rule")]:
        with pytest.raises(NetworkError) as exc:
            make_rule(**kw)
        assert exc.value.field == field
    assert parse_bytes("64MB") == 64e6 and parse_bytes("1.5GiB") == 1.5 * 2**30 and parse_bytes("100") == 100
    with pytest.raises(NetworkError, match="budget"):
        parse_bytes("lots")


def _cfg(**kw):
    base = dict(task="digits", rule="bptt", epochs=2, batch_size=32, hidden=16, n_train=64, n_test=32, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    straight = train(_cfg(), tmp_path / "a", progress=False)
    class Stop(Exception):  # interrupts run "c" right after its first epoch
        pass

    def stop(row):
        raise Stop

    with pytest.raises(Stop):
        train(_cfg(), tmp_path / "c", progress=False, on_epoch=stop)
    resumed = train(_cfg(), tmp_path / "c", resume=True, progress=False)
    for k, p in straight["model"].state_dict().items():
        assert torch.equal(p, resumed["model"].state_dict()[k]), k
    a = np.genfromtxt(tmp_path / "a" / "metrics.csv", delimiter=",", names=True)
    c = np.genfromtxt(tmp_path / "c" / "metrics.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(a["train_loss"], c["train_loss"])
    for f in ("model.h5", "curve.png", "config.json", "checkpoint.pt"):
        assert (tmp_path / "c" / f).stat().st_size > 0
    assert not list((tmp_path / "c").glob("*.tmp"))


def test_resume_refuses_other_config_and_tampered_checkpoint(tmp_path):
    from neurosim.errors import NeurosimError

    train(_cfg(epochs=1), tmp_path, progress=False)
    with pytest.raises(NeurosimError, match=r"config: .*--lr [0-9.e-]+ there, 0.1 here"):
        train(_cfg(epochs=1, lr=0.1), tmp_path, resume=True, progress=False)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(NeurosimError, match="not a readable neurosim checkpoint"):
        train(_cfg(epochs=1), tmp_path, resume=True, progress=False)


def test_cli_train_writes_a_loadable_model_and_rejects_missing_options(tmp_path, capsys):
    import neurosim as ns

    out = tmp_path / "run"
    assert main(["train", "--task", "digits", "--epochs", "1", "--hidden", "8", "--n-train", "32",
                 "--n-test", "16", "--no-progress", "--out", str(out)]) == 0
    net = ns.load(out / "model.h5")
    assert net.population("hidden").size == 8
    assert main(["train", "--task", "digits", "--rule", "tbptt", "--out", str(tmp_path / "x")]) == 2
    assert "--k" in capsys.readouterr().err
    assert main(["train", "--task", "nope", "--out", str(tmp_path / "y")]) == 2
    assert main(["train", "--task", "digits", "--resume", "--out", str(tmp_path / "z")]) == 2


@pytest.mark.parametrize("model,recurrent", [("lif", False), ("lif", True), ("alif", False), ("alif", True)])
@pytest.mark.parametrize("policy,budget", [("hsm", 1), ("hsm", 7), ("ism", 12), ("mixed", 9), ("mixed", 80)])
def test_budgeted_bptt_equals_full_bptt(model, recurrent, policy, budget):
    """The executed recompute schedule gives BPTT's gradients to 1e-10 relative (float64)."""
    net = recurrent_network(8, 20, 3, model=model, recurrent=recurrent, seed=5)
    batch = _batch(T=40)
    ref, g_ref = _grads(net, make_rule("bptt"), batch)
    out, g = _grads(net, make_rule("budgeted", budget=budget, policy=policy), batch)
    assert out.loss == pytest.approx(ref.loss, rel=1e-14)
    for k in g_ref:
        rel = ((g[k] - g_ref[k]).norm() / g_ref[k].norm()).item()
        assert rel < 1e-10, (k, rel)
    torch.testing.assert_close(out.readout, ref.readout, rtol=0, atol=0)


@pytest.mark.parametrize("model", ["lif", "alif"])
@pytest.mark.parametrize("policy,budget,block", [("hsm", 2, 3), ("mixed", 4, 8), ("ism", 9, 5), ("mixed", 80, 40)])
def test_budgeted_bptt_over_blocks_equals_full_bptt(model, policy, budget, block):
    """Planning over blocks of w steps (T = 40: blocks of 3 and 8 leave a shorter last block)
    keeps the gradient exact: 1e-10 relative to BPTT in float64."""
    net = recurrent_network(8, 20, 3, model=model, seed=7)
    batch = _batch(T=40)
    ref, g_ref = _grads(net, make_rule("bptt"), batch)
    out, g = _grads(net, make_rule("budgeted", budget=budget, policy=policy, block=block), batch)
    assert out.loss == pytest.approx(ref.loss, rel=1e-14)
    for k in g_ref:
        rel = ((g[k] - g_ref[k]).norm() / g_ref[k].norm()).item()
        assert rel < 1e-10, (k, rel)


def test_budgeted_block_pays_its_working_memory_from_a_byte_budget():
    from neurosim.errors import NetworkError
    from training.rules import stored_state_nbytes

    net = recurrent_network(8, 20, 3, model="alif", seed=5)
    batch = _batch(T=30)
    m = from_network(net, dtype=torch.float64)
    size = stored_state_nbytes(m, batch)
    rule = make_rule("budgeted", budget=str(40 * size + 1000), policy="mixed", block=4)
    rule.working_memory(m, batch)  # measured for this batch's shape; then stand in a known value
    rule.working_bytes = 8 * size
    assert rule.slots(m, batch) == 40 - 8 - 1 + 1000 // size
    with pytest.raises(NetworkError, match="block"):
        make_rule("budgeted", budget=5, block=0)
    with pytest.raises(NetworkError, match="working memory"):
        make_rule("budgeted", budget="1KB", block=4).slots(m, batch)


@pytest.mark.parametrize("policy", ["hsm", "ism", "mixed"])
@pytest.mark.parametrize("block", [1, 4, 16])
def test_byte_budget_bounds_the_measured_peak(block, policy):
    """A byte budget bounds the iteration's peak of live tensor bytes (training.budget.memory.LiveBytes)
    within 1%: the stored states and step graphs (each graph with the input state it holds) plus
    the measured working memory of one block fit into it, and the gradient stays BPTT's."""
    from training.budget.memory import LiveBytes

    net = recurrent_network(10, 64, 2, model="alif", seed=1)
    g = torch.Generator().manual_seed(1)
    batch = Batch((torch.rand(300, 4, 10, generator=g) < 0.1).float(), torch.tensor([0, 1, 1, 0]),
                  torch.arange(300) >= 270)
    m = from_network(net)
    with LiveBytes() as full:
        make_rule("bptt").backward(m, batch)
    ref = {k: p.grad.clone() for k, p in m.weights.items()}
    budget = int(0.15 * full.peak)
    rule = make_rule("budgeted", budget=str(budget), policy=policy, block=block)
    m.zero_grad(set_to_none=True)
    with LiveBytes() as mem:
        rule.backward(m, batch)
    assert mem.peak <= 1.01 * budget, (mem.peak, budget)
    assert rule.slots(m, batch) >= 2
    for k, p in m.weights.items():
        assert ((p.grad - ref[k]).norm() / ref[k].norm()).item() < 1e-5


def test_auto_block_picks_the_cheapest_estimate_and_keeps_bptt_gradients():
    """block='auto' evaluates the cost model of choose_block for every candidate that fits the
    byte budget and runs the cheapest; the gradient stays BPTT's (1e-10, float64) and the
    peak stays within the budget (1%)."""
    from training.budget.memory import LiveBytes
    from training.rules import BLOCK_CANDIDATES, CALL_COST

    net = recurrent_network(10, 64, 2, model="alif", seed=1)
    g = torch.Generator().manual_seed(2)
    batch = Batch((torch.rand(400, 4, 10, generator=g) < 0.1).double(), torch.tensor([0, 1, 1, 0]),
                  torch.arange(400) >= 360)
    m = from_network(net, dtype=torch.float64)
    with LiveBytes() as full:
        ref = make_rule("bptt").backward(m, batch)
    g_ref = {k: p.grad.clone() for k, p in m.weights.items()}
    budget = int(0.08 * full.peak)
    rule = make_rule("budgeted", budget=str(budget), policy="mixed", block="auto")
    m.zero_grad(set_to_none=True)
    with LiveBytes() as mem:
        out = rule.backward(m, batch)
    assert mem.peak <= 1.01 * budget, (mem.peak, budget)
    assert set(rule.estimates) <= set(BLOCK_CANDIDATES) and len(rule.estimates) >= 3
    assert rule.block == min(rule.estimates, key=rule.estimates.get) > 1  # per-step plans pay 3 per step
    for w, est in rule.estimates.items():  # at least one forward sweep plus the calls, at most one per slot-less step
        n_blocks = -(-400 // w)
        assert 400 + CALL_COST * n_blocks <= est <= 400 * 401 / 2 + CALL_COST * n_blocks
    assert out.loss == pytest.approx(ref.loss, rel=1e-13)
    for k, p in m.weights.items():
        assert ((p.grad - g_ref[k]).norm() / g_ref[k].norm()).item() < 1e-10
    counted = make_rule("budgeted", budget=12, block="auto")
    counted.backward(m, batch)
    assert counted.block == 1 and list(counted.estimates) == [1]
    with pytest.raises(NetworkError, match="block"):
        make_rule("budgeted", budget=5, block="fast")


def test_budgeted_measures_alpha_and_converts_byte_budgets():
    net = recurrent_network(8, 20, 3, model="alif", seed=5)
    batch = _batch(T=30)
    rule = make_rule("budgeted", budget="100KB", policy="mixed")
    m = from_network(net, dtype=torch.float64)
    alpha = rule.measure_alpha(m, batch)
    assert 0.2 < alpha < 20
    from training.rules import state_nbytes, stored_state_nbytes
    stored = stored_state_nbytes(m, batch)
    slots = rule.slots(m, batch)
    assert 0 < rule.working_bytes < 100e3
    assert slots == int((100e3 - rule.working_bytes) // stored) - 1 > 10
    # v (23 neurons x 3 trials x 8 B), a on the 10 adaptive columns, spikes of 23 + 8 channels as bool
    assert stored == 23 * 3 * 8 + 10 * 3 * 8 + (23 + 8) * 3 < state_nbytes(m.initial_state(3)) / 3


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("graded", [False, True])
def test_stored_hidden_state_steps_exactly_like_the_full_one(seed, graded):
    """pack/unpack of a hidden state loses nothing a step reads: the next steps (all models,
    refractoriness, delays, both resets) give bit-identical states (the readout's v too); graded (non 0/1)
    inputs keep the history in floating point."""
    from helpers import random_network
    from training.rules import StateCodec, flatten_state

    net = random_network(seed)
    m = from_network(net, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(30, 2, m.n_sources, generator=g, dtype=torch.float64)
    x = x if graded else (x < 0.3).double()
    batch = Batch(x, torch.zeros(2, dtype=torch.long), torch.ones(30, dtype=torch.bool))
    codec = StateCodec(m, batch)
    assert codec.binary is not graded
    s = m.initial_state(2)
    flat, unflatten = flatten_state(s)
    with torch.no_grad():
        for t in range(30):
            a = m.step(unflatten(flat), x[t])
            b = m.step(unflatten(codec.unpack(codec.pack(flat))), x[t])
            for name, u, w in zip(a.neurons._fields, a.neurons, b.neurons):
                cols = m.params.adapt != 0 if name == "a" else slice(None)  # a matters only there
                assert torch.equal(u[:, cols], w[:, cols]), (t, name)
            assert torch.equal(a.history[0], b.history[0])
            flat = flatten_state(a)[0]



def test_cuda_device_is_refused_clearly_without_a_gpu(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: nothing to refuse")
    assert main(["train", "--task", "digits", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.gpu
def test_training_on_cuda_matches_cpu(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device (CI has none)")
    cpu = train(_cfg(epochs=1), tmp_path / "cpu", progress=False, device="cpu")
    gpu = train(_cfg(epochs=1), tmp_path / "gpu", progress=False, device="cuda")
    assert cpu["history"][0]["train_loss"] == pytest.approx(gpu["history"][0]["train_loss"], rel=1e-4)


def test_cli_train_task_options_reach_the_task(tmp_path, capsys):
    import json

    out = tmp_path / "run"
    assert main(["train", "--task", "digits", "--epochs", "1", "--hidden", "8", "--n-train", "32", "--n-test", "16",
                 "--task-option", "coding=regular", "--task-option", "row_steps=4", "--no-progress",
                 "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task_options"] == {"coding": "regular", "row_steps": 4}
    for bad, where in ((["coding=morse"], "digits.coding"), (["colour=red"], "digits.colour"),
                       (["coding"], "--task-option"), (["seed=3"], "--seed")):
        args = [a for b in bad for a in ("--task-option", b)]
        assert main(["train", "--task", "digits", *args, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert where in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option,value", [("--clip", "-1"), ("--tau-adapt", "0"), ("--lr", "nan")])
def test_cli_train_rejects_bad_numbers(tmp_path, capsys, option, value):
    assert main(["train", "--task", "digits", option, value, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert option in err and len(err.strip().splitlines()) == 1


def test_cli_train_refuses_rule_options_for_rules_with_their_own_flags(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "evidence", "--rule", "bptt", "--rule-option", "k_att=3", "--epochs", "1",
                 "--no-progress", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--rule-option k_att" in err and "'bptt' takes no rule options" in err
    assert not (out / "checkpoint.pt").exists()


def test_cli_train_names_the_rule_for_a_method_only_task(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--task", "sbm", "--rule", "bptt", "--no-progress", "--out", str(out)]) == 2
    assert "--task sbm: trained by --rule msg, not by bptt" in capsys.readouterr().err
    assert not out.exists()


def test_byte_budget_holds_when_a_later_batch_is_larger():
    """The rule measures its working memory and alpha per batch shape: a run whose first batch is
    small (e.g. a resumed epoch's short tail) and whose next is large stays within the budget (1%)."""
    from training.budget.memory import LiveBytes

    net = recurrent_network(10, 64, 2, model="alif", seed=1)
    g = torch.Generator().manual_seed(3)

    def batch(B):
        return Batch((torch.rand(300, B, 10, generator=g) < 0.1).float(), torch.arange(B) % 2,
                     torch.arange(300) >= 270)

    m = from_network(net)
    big = batch(16)
    with LiveBytes() as full:
        make_rule("bptt").backward(m, big)
    budget = int(0.06 * full.peak)
    rule = make_rule("budgeted", budget=str(budget), policy="hsm", block=4)
    rule.backward(m, batch(2))
    small_working = rule.working_bytes
    m.zero_grad(set_to_none=True)
    with LiveBytes() as mem:
        rule.backward(m, big)
    assert rule.working_bytes > 2 * small_working  # measured again for 16 trials (80 KB -> 280 KB here)
    assert mem.peak <= 1.01 * budget, (mem.peak, budget)


def test_resume_extends_a_constant_rate_run_and_refuses_to_rescale_a_cosine_one(tmp_path):
    """--resume with more --epochs continues a constant-rate run to exactly the weights of an
    uninterrupted longer run; a cosine schedule's rates depend on --epochs, so it is refused
    naming the option, as is asking for fewer epochs than are done."""
    from neurosim.errors import NeurosimError

    straight = train(_cfg(epochs=2, schedule="constant"), tmp_path / "a", progress=False)
    train(_cfg(epochs=1, schedule="constant"), tmp_path / "b", progress=False)
    extended = train(_cfg(epochs=2, schedule="constant"), tmp_path / "b", resume=True, progress=False)
    for k, p in straight["model"].state_dict().items():
        assert torch.equal(p, extended["model"].state_dict()[k]), k
    assert [r["train_loss"] for r in extended["history"]] == [r["train_loss"] for r in straight["history"]]
    with pytest.raises(NeurosimError, match="run has done 2 epochs, more than --epochs 1"):
        train(_cfg(epochs=1, schedule="constant"), tmp_path / "b", resume=True, progress=False)
    train(_cfg(epochs=1, schedule="cosine"), tmp_path / "c", progress=False)
    with pytest.raises(NeurosimError, match="--epochs 1 there, 2 here.*cosine schedule sets every epoch's rate"):
        train(_cfg(epochs=2, schedule="cosine"), tmp_path / "c", resume=True, progress=False)
