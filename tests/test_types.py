"""Each classic type's defining property, against `vanilla` trained on the same data and budget."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.data import resolve
from aekit.evaluation import evaluate_model
from aekit.metrics import psnr
from aekit.models import create_model
from aekit.penalties import jacobian_frobenius_sq

BUDGET = {"epochs": 12, "progress": False, "seed": 0, "patience": None}
LATENT = 16


@pytest.fixture(scope="module")
def digits():
    return resolve("digits")


@pytest.fixture(scope="module")
def test_x(digits):
    return resolve("digits:test").all()


def _trained(preset, data, **kw):
    torch.manual_seed(0)
    model = create_model(preset, data.input_shape, LATENT, **kw)
    aekit.fit(model, data, **BUDGET)
    return model


@pytest.fixture(scope="module")
def vanilla(digits):
    return _trained("vanilla", digits)


@pytest.mark.parametrize("preset", ["sparse", "sparse-kl", "sparse-topk"])
def test_sparse_codes_are_sparse(preset, digits, test_x, vanilla):
    model = _trained(preset, digits)
    with torch.no_grad():
        z_sparse, z_dense = model.encode(test_x), vanilla.encode(test_x)
    thr = max(model.code.active_threshold, 1e-2)
    active = (z_sparse.abs() > thr).float().sum(1).mean()
    dense_active = (z_dense.abs() > thr).float().sum(1).mean()
    assert active < 0.5 * dense_active, (float(active), float(dense_active))
    if preset == "sparse-topk":
        assert int((z_sparse != 0).sum(1).max()) <= model.code.k
    metrics = evaluate_model(model, resolve("digits:test"))
    assert {"l0", "dead_fraction"} <= set(metrics)


def test_auxk_gives_dead_topk_units_a_gradient_and_fewer_stay_dead(digits):
    """AuxK: units outside every sample's top k get no gradient from the reconstruction; the
    penalty gives the dead ones one, and over a short training fewer units end up dead."""
    x = digits.all()[:64]
    grads = {}
    for penalties in ({}, {"auxk": {"weight": 0.25}}):
        model = create_model("sparse-topk", digits.input_shape, LATENT, seed=0,
                             penalties=penalties).train()
        out = model(x)
        sum(out.losses.values()).backward()
        fired = (out.z != 0).any(0)
        last = model.encoder.linear2.weight.grad  # rows: the code units' pre-activations
        grads[bool(penalties)] = last[~fired].abs().sum(1)
        assert model.penalties.get("auxk") is None or float(out.losses["auxk"].detach()) > 0
    import copy

    copy.deepcopy(model)  # the penalty took the step's pre-activations: no graph is left
    assert float(grads[False].max()) == 0  # never selected: nothing reaches them
    # dead units among each sample's top 2k pre-activations (and above 0) get one
    assert int((grads[True] > 0).sum()) >= 2, grads[True]
    model.eval()
    assert float(model(x).losses["auxk"]) == 0  # training only
    dead = {}
    for penalties in ({}, None):  # none vs the preset's own (auxk)
        kw = {} if penalties is None else {"penalties": penalties}
        model = create_model("sparse-topk", digits.input_shape, LATENT, seed=0, **kw)
        aekit.fit(model, digits, **{**BUDGET, "epochs": 30})
        dead[penalties is None] = evaluate_model(model, resolve("digits:test"))["dead_fraction"]
    assert dead[True] <= dead[False] - 0.1, dead


def test_denoising_beats_vanilla_on_noisy_input(digits, test_x, vanilla):
    model = _trained("denoising", digits)
    g = torch.Generator().manual_seed(1)
    noisy = test_x + 0.25 * torch.randn(test_x.shape, generator=g)
    with torch.no_grad():
        p_den = psnr(model.reconstruct(noisy), test_x)
        p_van = psnr(vanilla.reconstruct(noisy), test_x)
    assert p_den > p_van + 0.5, (p_den, p_van)
    assert p_den > psnr(noisy, test_x)


def test_contractive_has_smaller_jacobian(digits, test_x, vanilla):
    """The penalty contracts the code and the code still reconstructs: at the former default
    weight (3.0) the Jacobian was ~0 because the code had collapsed to a constant."""
    budget = {**BUDGET, "epochs": 30}
    torch.manual_seed(0)
    model = create_model("contractive", digits.input_shape, LATENT)
    aekit.fit(model, digits, **budget)
    x = test_x[:64]

    def jac(m):
        with torch.no_grad():
            xn = m.normalize(x)
        return float(jacobian_frobenius_sq(m.code_of_normalized, xn, "exact").mean().detach())

    # compare like with like: the vanilla code is linear and unbounded, so also train a
    # sigmoid-coded model without the penalty
    torch.manual_seed(0)
    plain = create_model("contractive", digits.input_shape, LATENT, penalties={})
    aekit.fit(plain, digits, **budget)
    assert jac(model) < 0.6 * jac(plain), (jac(model), jac(plain))
    assert jac(model) < jac(vanilla)
    held = resolve("digits:test")
    ev, ev_plain = (evaluate_model(m, held)["explained_variance"] for m in (model, plain))
    assert ev > 0.7 * ev_plain > 0, (ev, ev_plain)


def test_hutchinson_estimates_exact_jacobian():
    model = create_model("deep", (1, 8, 8), 6)
    x = torch.rand(4, 64).view(4, 1, 8, 8)
    exact = jacobian_frobenius_sq(model.code_of_normalized, x, "exact")
    torch.manual_seed(0)
    est = jacobian_frobenius_sq(model.code_of_normalized, x, "hutchinson", n_samples=400)
    assert torch.allclose(est, exact, rtol=0.2)


def test_contractive_with_the_hutchinson_estimator_trains_and_evaluates(digits):
    # the estimator's vector–Jacobian products ran under evaluation's torch.no_grad: crash
    model = create_model("contractive", (1, 8, 8), LATENT,
                         penalties={"contractive": {"weight": 0.1, "method": "hutchinson"}})
    aekit.fit(model, digits, epochs=1, progress=False, val_fraction=0.1)
    m = evaluate_model(model, digits)
    assert np.isfinite(m["mse"])
    with pytest.raises(aekit.AekitError, match="n_samples"):
        create_model("contractive", (1, 8, 8), LATENT,
                     penalties={"contractive": {"weight": 0.1, "n_samples": 0}})


def test_bce_is_refused_where_outputs_are_not_in_unit_range():
    with pytest.raises(aekit.AekitError, match="bce"):
        create_model("vanilla", (4,), 2, loss="bce", normalization="standard")


def test_images_outside_unit_range_are_standardised_not_squashed(tmp_path, capsys):
    from aekit.cli import main

    x = resolve("digits").all().numpy()  # [0, 1]
    np.save(tmp_path / "pm1.npy", (x * 2 - 1).astype(np.float32))  # images in [−1, 1]
    over = x.copy()
    over[:, 0, 0, 0] = 1.5  # a [0, 1] set with one value over 1 is not 8-bit levels
    assert resolve(str(tmp_path / "pm1.npy")).scale == 1.0
    np.save(tmp_path / "over.npy", over.astype(np.float32))
    assert resolve(str(tmp_path / "over.npy")).scale == 1.0  # it was divided by 255
    assert main(["train", "--preset", "vanilla", "--data", str(tmp_path / "pm1.npy"), "--epochs",
                 "5", "--out", str(tmp_path / "m"), "--no-progress", "--json"]) == 0
    import json

    res = json.loads(capsys.readouterr().out)
    # a sigmoid output could not reproduce the negative half: explained variance was −1.4
    assert res["metrics"]["explained_variance"] > 0.3
    assert json.loads((tmp_path / "m" / "config.json").read_text())["config"]["normalization"] \
        == "standard"


def test_variational_has_kl_and_samples(digits):
    model = _trained("variational", digits)
    model.train()
    out = model(digits.all()[:32])
    assert "kl" in out.losses and float(out.losses["kl"].detach()) > 0
    # sampling in training, mean at inference
    assert not torch.equal(model(digits.all()[:8]).z, model(digits.all()[:8]).z)
    model.eval()
    samples = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    metrics = evaluate_model(model, resolve("digits:test"))
    assert metrics["elbo"] < 0 and metrics["kl"] > 0


def test_deep_layer_outputs_expose_every_layer(digits):
    model = create_model("deep", digits.input_shape, LATENT, arch_options={"hidden": [64, 32]})
    outs = model.layer_outputs(digits.all()[:4])
    linear = [k for k in outs if "linear" in k]
    assert len(linear) == 6  # 3 encoder + 3 decoder layers
    assert outs["encoder.linear1"].shape == (4, 64) and outs["encoder.linear2"].shape == (4, 32)
    assert outs["code"].shape == (4, LATENT) and outs["output"].shape == (4, 1, 8, 8)


@pytest.mark.parametrize("freeze", [True, False])
def test_transfer_encoder(digits, tmp_path, freeze):
    source = _trained("deep", digits)
    source.save_pretrained(tmp_path / "src")
    target = create_model("deep", digits.input_shape, LATENT)
    copied = target.load_encoder_from(tmp_path / "src", n_layers=2, freeze=freeze)
    assert copied == ["linear1", "linear2"]
    for name in copied:
        for a, b in zip(getattr(source.encoder, name).parameters(),
                        getattr(target.encoder, name).parameters()):
            assert torch.equal(a, b)
    before = {k: v.clone() for k, v in target.encoder.state_dict().items()}
    aekit.fit(target, digits, epochs=2, progress=False)
    after = target.encoder.state_dict()
    for name in copied:
        for key in (f"{name}.weight", f"{name}.bias"):
            assert torch.equal(before[key], after[key]) == freeze
    assert not torch.equal(before["linear3.weight"], after["linear3.weight"])  # rest trains


def test_encode_takes_numpy_and_float64_and_fit_refuses_nan():
    m = aekit.create_model("vanilla", (4,), 2)
    x = np.random.default_rng(0).random((10, 4))  # float64 NumPy
    assert m.encode(x).shape == (10, 2) and m.decode(m.encode(torch.from_numpy(x))).dtype == torch.float32
    y = np.random.default_rng(1).random((100, 1, 8, 8)).astype(np.float32)
    y[5, 0, 0, 0] = np.nan  # a validation row for seed 0: every val loss would be NaN
    with pytest.raises(aekit.AekitError, match=r"sample 5 \(counting from 0\) contains NaN"):
        aekit.fit(aekit.create_model("vanilla", (1, 8, 8), 4), y, epochs=1, seed=0, progress=False)


def test_fit_keeps_a_transferred_encoders_normalisation():
    rng = np.random.default_rng(0)
    opts = {"arch_options": {"hidden": [8]}, "normalization": "standard"}
    src = aekit.create_model("deep", (6,), 2, **opts)
    aekit.fit(src, (rng.random((50, 6)) * 10).astype(np.float32), epochs=1, progress=False)
    dst = aekit.create_model("deep", (6,), 2, **opts)
    dst.load_encoder_from(src, 1, freeze=True)
    aekit.fit(dst, (rng.random((50, 6)) * 100).astype(np.float32), epochs=1, progress=False)
    assert torch.equal(dst.norm_shift, src.norm_shift) and torch.equal(dst.norm_scale, src.norm_scale)


def test_an_mlp_too_big_to_train_is_refused_before_it_is_built():
    # a full-size photo as one sample: 720,000 inputs (the process was killed for memory)
    with pytest.raises(aekit.AekitError, match="dense"):
        aekit.create_model("deep", (3, 480, 500), 16)
    assert aekit.create_model("deep", (3, 64, 64), 16) is not None  # a real size still builds


def test_integer_images_are_scaled_as_fit_scales_them():
    # fit() reads uint8 as levels /255; encode() took the raw 0–255 values (codes ~1000× off)
    u8 = np.random.default_rng(0).integers(0, 256, (20, 1, 8, 8), dtype=np.uint8)
    m = aekit.create_model("deep", (1, 8, 8), 4, seed=0)
    with torch.no_grad():
        ref = m.encode(u8 / 255.0)
        assert torch.allclose(m.encode(u8), ref, atol=1e-6)
        assert torch.allclose(m.encode(torch.from_numpy(u8)), ref, atol=1e-6)
        assert torch.allclose(m.reconstruct(u8), m.reconstruct(u8 / 255.0), atol=1e-6)
        assert m(u8).x_hat.shape == (20, 1, 8, 8)  # forward takes NumPy as encode does


def test_create_model_seed_makes_the_weights_repeatable():
    state = torch.random.get_rng_state()
    a, b = (aekit.create_model("deep", (16,), 4, seed=3) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's generator untouched
    c = aekit.create_model("deep", (16,), 4, seed=4)
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_fit_refuses_data_a_sigmoid_output_cannot_reproduce():
    # a "unit" model (sigmoid output) on 0–16 table values trained to an output stuck at 1
    x = np.random.default_rng(0).random((40, 8)).astype(np.float32) * 16
    with pytest.raises(aekit.AekitError, match="outside \\[0, 1\\].*normalization='standard'"):
        aekit.fit(aekit.create_model("deep", (8,), 2), x, epochs=1, progress=False)
    m = aekit.create_model("deep", (8,), 2, normalization="standard")
    assert aekit.fit(m, x, epochs=1, progress=False).epochs == 1


def test_decode_of_a_wrong_code_width_is_one_aekit_error():
    m = aekit.create_model("deep", (16,), 4)
    with pytest.raises(aekit.AekitError, match="decodes \\(batch, 4\\) codes"):
        m.decode(torch.zeros(2, 5))


def test_a_config_asking_for_a_huge_input_is_refused_before_allocating(tmp_path):
    from aekit.errors import ModelFileError
    from aekit.models import Autoencoder

    m = aekit.create_model("conv", (1, 16, 16), 4)
    m.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta["config"]["input_shape"] = [3, 60000, 60000]
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="over aekit's limit"):
        Autoencoder.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("[" * 100000 + "]" * 100000)  # deep nesting
    with pytest.raises(ModelFileError):
        Autoencoder.from_pretrained(tmp_path / "m")


def test_devices_that_are_not_here_are_value_errors():
    from aekit.training import pick_device

    for dev in ("gpu", "mps", "tpu"):
        if dev == "mps" and torch.backends.mps.is_available():
            continue
        with pytest.raises(ValueError, match="device"):
            pick_device(dev)


def test_resume_with_another_model_is_one_clear_error(tmp_path):
    x = np.random.default_rng(0).random((40, 8)).astype(np.float32)
    aekit.fit(aekit.create_model("deep", (8,), 2), x, epochs=2, out_dir=tmp_path, progress=False)
    other = aekit.create_model("deep", (8,), 3)  # another code size
    with pytest.raises(aekit.AekitError, match="checkpoint is of another model"):
        aekit.fit(other, x, epochs=3, out_dir=tmp_path, resume=True, progress=False)


def test_fractional_epochs_and_code_sizes_are_refused():
    x = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="whole number"):
        aekit.fit(aekit.create_model("vanilla", (4,), 2), x, epochs=2.5, progress=False)
    with pytest.raises(aekit.AekitError, match="whole number"):
        aekit.create_model("vanilla", (4,), 2.7)


def test_loading_onto_a_device_that_is_not_here_blames_the_device(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    aekit.create_model("vanilla", (4,), 2).save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="no CUDA GPU"):  # it said the file was not valid
        aekit.Autoencoder.from_pretrained(tmp_path / "m", map_location="cuda")


def test_the_reported_elbo_samples_its_code_and_kl_leaves_out_beta(digits):
    """evaluate's ELBO took the reconstruction at z = μ (an optimistic plug-in, 1.6 nats
    above a Monte-Carlo ELBO on digits) and reported β·KL as 'kl'."""
    from aekit.codes import gaussian_kl

    held = resolve("digits:test")
    x = held.all()
    for beta, epochs in ((1.0, 30), (4.0, 3)):
        torch.manual_seed(0)
        model = create_model("variational", digits.input_shape, 8, code_options={"beta": beta})
        aekit.fit(model, digits, **{**BUDGET, "epochs": epochs})
        model.eval()
        metrics = evaluate_model(model, held)
        with torch.no_grad():
            mu, logvar = model.code.split(model.encoder(model.normalize(x)))
            kl = float(gaussian_kl(mu, logvar).mean())
            at_mean = float(model(x).losses["recon"])
            torch.manual_seed(1)  # other draws than evaluate's
            mc = np.mean([float(model(x, sample=True).losses["recon"]) for _ in range(20)])
        assert metrics["kl"] == pytest.approx(kl, rel=1e-4)  # without β
        assert -metrics["elbo"] - kl == pytest.approx(mc, rel=0.01)  # E_q, as Monte Carlo says
        if beta == 1.0:  # a code in use (KL > 1 nat): z = μ read the reconstruction better
            assert kl > 1 and mc > at_mean + 0.5, (kl, mc, at_mean)
    assert gaussian_kl(mu.bfloat16(), logvar.bfloat16()).dtype == torch.float32


def test_a_denoiser_is_validated_on_noisy_inputs(digits):
    """fit()'s validation ran in eval mode, where the input is not corrupted: a denoiser's
    validation loss measured copying a clean input (0.6 against a training loss of 1.0),
    so early stopping and the best weights followed the wrong objective."""
    torch.manual_seed(0)
    model = create_model("denoising", digits.input_shape, LATENT)
    result = aekit.fit(model, digits, **{**BUDGET, "epochs": 6})
    last = result.history[-1]
    assert last["val_recon"] > 0.8 * last["recon"], last  # noisy like training, not clean
    again = []
    for _ in range(2):
        torch.manual_seed(0)
        again.append(aekit.fit(create_model("denoising", digits.input_shape, LATENT), digits,
                               **{**BUDGET, "epochs": 1}).history[-1]["val_recon"])
    assert again[0] == pytest.approx(again[1], rel=1e-5)  # the same seeded noise each time


def test_topk_with_contractive_and_auxk_trains():
    """The contractive penalty's Jacobian runs the code again (vmapped); the top-k code kept
    those pre-activations for auxk in place of the training step's, and the step failed."""
    model = create_model("sparse-topk", (12,), 16, normalization="standard",
                         penalties={"contractive": {"method": "exact"}, "auxk": {}}).train()
    out = model(torch.randn(16, 12))
    out.loss.backward()
    assert {"contractive", "auxk"} <= set(out.losses) and torch.isfinite(out.loss)


def test_a_codec_picks_a_random_quality_only_for_a_training_step():
    code = create_model("codec", (3, 32, 32), 8, arch_options={"channels": 16}).code.train()
    top = code.n_qualities - 1
    assert {code.pick_quality() for _ in range(20)} == {top}  # encode(): deterministic
    torch.manual_seed(0)
    assert len({code.pick_quality(sample=True) for _ in range(40)}) > 1


@pytest.mark.parametrize("preset, options, match", [
    ("deep", {"arch_options": {"hidden": "64"}}, "hidden is a list of layer widths"),
    ("deep", {"arch_options": {"hidden": [64.5]}}, "hidden is a list of layer widths"),
    ("conv", {"arch_options": {"channels": []}}, "at least one width"),
    ("conv", {"arch_options": {"channels": [0]}}, "channels is a list of layer widths"),
    ("conv", {"arch_options": {"levels": -1}}, "levels"),
    ("variational", {"code_options": {"beta": -1.0}}, "finite number ≥ 0"),
    ("variational", {"code_options": {"beta": "x"}}, "finite number ≥ 0"),
    ("sparse-topk", {"code_options": {"k": 2.0}}, "integer 1 ≤ k"),
    ("sparse-topk", {"code_options": {"k": True}}, "integer 1 ≤ k"),
    ("sparse", {"penalties": {"l1": {"weight": float("nan")}}}, "finite number ≥ 0"),
    ("sparse", {"penalties": {"l1": {"weight": -1}}}, "finite number ≥ 0"),
])
def test_bad_part_options_are_refused_when_the_model_is_built(preset, options, match):
    """They were taken: "64" built hidden layers [6, 4], a negative β rewarded leaving the
    prior, and a float k or a NaN weight failed only at the first step."""
    shape = (1, 8, 8) if preset == "conv" else (12,)
    with pytest.raises(aekit.AekitError, match=match):
        create_model(preset, shape, 4, **options)


def test_transfer_between_normalisations_is_refused():
    """A standardised source's shift and scale in a unit (sigmoid) model kept its output
    above the per-pixel mean."""
    src = create_model("deep", (1, 8, 8), 4, normalization="standard")
    with pytest.raises(aekit.AekitError, match="normalises its input 'standard'"):
        create_model("deep", (1, 8, 8), 4).load_encoder_from(src, 1)

