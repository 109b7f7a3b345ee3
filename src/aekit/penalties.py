"""Loss terms added to the reconstruction loss, registered by name in :data:`PENALTIES`.

A penalty is built as ``Penalty(weight=…, **options)`` and called with the model, the
normalised (possibly corrupted) input ``x`` and the code ``z``; it returns a scalar that is
already multiplied by its weight. Terms are summed per sample and averaged over the batch,
like the reconstruction loss, so weights mean the same thing at any batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from aekit.errors import AekitError, nonnegative
from aekit.registry import Registry

if TYPE_CHECKING:
    from aekit.models import Autoencoder

PENALTIES: Registry = Registry("penalty")


class Penalty:
    def __init__(self, weight: float = 1.0) -> None:
        self.weight = nonnegative(weight, f"the {type(self).__name__} penalty's weight")

    def __call__(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        return self.weight * self.value(model, x, z)

    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        raise NotImplementedError


@PENALTIES.register("l1", help="activity L1: weight · Σ|z| (sparse autoencoder)")
class L1Activity(Penalty):
    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        return z.abs().flatten(1).sum(1).mean()


@PENALTIES.register("kl_sparsity", help="β · Σ KL(ρ ‖ ρ̂_j), ρ̂_j the mean activation in (0, 1)")
class KLSparsity(Penalty):
    """Ng's sparse autoencoder (CS294A notes, 2011): each unit's mean activation over the
    batch ρ̂_j is pulled towards a small target ρ. Needs a code in (0, 1) (sigmoid)."""

    def __init__(self, weight: float = 1.0, rho: float = 0.05) -> None:
        super().__init__(weight)
        if not 0.0 < rho < 1.0:
            raise AekitError(f"kl_sparsity needs 0 < rho < 1, got {rho}")
        self.rho = rho

    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        rho_hat = z.flatten(1).mean(0).clamp(1e-6, 1 - 1e-6)
        rho = self.rho
        kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
        return kl.sum()


def jacobian_frobenius_sq(f, x: Tensor, method: str = "auto", n_samples: int = 1,
                          exact_max: int = 200_000) -> Tensor:
    """Per-sample ‖∂f(x)/∂x‖²_F, shape (B,), differentiable w.r.t. f's parameters.

    ``exact``: the full Jacobian via ``torch.func.vmap(jacrev(f))`` — exact for any f, cost
    ∝ output size × a backward pass. ``hutchinson``: E_v ‖Jᵀv‖² with v ~ N(0, I) in the output
    space equals tr(J Jᵀ) = ‖J‖²_F (Hutchinson 1989); ``n_samples`` vector–Jacobian products,
    unbiased, cost independent of the output size — use it for large inputs/codes.
    ``auto`` picks exact while input × output elements per sample ≤ ``exact_max``.
    """
    out_numel = f(x[:1]).numel()
    in_numel = x[0].numel()
    if method == "auto":
        method = "exact" if in_numel * out_numel <= exact_max else "hutchinson"
    if method == "exact":
        from torch.func import jacrev, vmap

        def single(xi: Tensor) -> Tensor:
            return f(xi.unsqueeze(0)).squeeze(0)

        jac = vmap(jacrev(single))(x)  # (B, *out, *in)
        return jac.flatten(1).pow(2).sum(1)
    if method == "hutchinson":
        # the vector–Jacobian products need autograd even where the caller has turned it off
        # (evaluation under torch.no_grad reports the penalty too); the graph is kept only
        # when the caller is training
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            y = f(x)
            total = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
            for _ in range(n_samples):
                v = torch.randn_like(y)
                (g,) = torch.autograd.grad(y, x, v, create_graph=training, retain_graph=True)
                total = total + g.flatten(1).pow(2).sum(1)
        return total / n_samples if training else (total / n_samples).detach()
    raise AekitError(f"contractive method must be auto, exact or hutchinson, got {method!r}")


@PENALTIES.register("contractive", help="weight · ‖∂z/∂x‖²_F (contractive autoencoder)")
class Contractive(Penalty):
    """Rifai et al. 2011. The Jacobian is of the code z with respect to the encoder's input,
    exact via ``torch.func`` or the Hutchinson estimator for large inputs (see
    :func:`jacobian_frobenius_sq`)."""

    def __init__(self, weight: float = 0.1, method: str = "auto", n_samples: int = 1) -> None:
        super().__init__(weight)
        if method not in ("auto", "exact", "hutchinson"):
            raise AekitError(f"contractive method must be auto, exact or hutchinson, got {method!r}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise AekitError(f"contractive n_samples must be an integer ≥ 1, got {n_samples!r}")
        self.method = method
        self.n_samples = n_samples

    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        return jacobian_frobenius_sq(model.code_of_normalized, x, self.method, self.n_samples).mean()


@PENALTIES.register("auxk", help="top-k codes: units no sample selected learn to reconstruct "
                                 "what the live ones miss (AuxK, Gao et al. 2024)")
class AuxK(Penalty):
    """Gao et al. 2024, "Scaling and evaluating sparse autoencoders" (AuxK). A unit of a
    ``topk`` code that no sample of the batch selected gets no gradient from the
    reconstruction, and one that never gets one stays dead. Here each sample's ``k_aux``
    (default 2k) largest pre-activations among those units, added to its live code (held
    fixed), must reconstruct the input too, so they get a gradient towards the error the live
    units leave. The paper's decoder is linear, its term ‖e − W·z_aux‖² with e the residual,
    and a unit is dead after 10M tokens without firing; aekit's decoders are not linear, so
    the aux code goes through the whole decoder, ‖x − dec(z + z_aux)‖² (squared error on the
    normalised, possibly corrupted, input whatever the model's loss), and "dead" is judged
    per batch, which keeps no state: a resumed run continues exactly. Default weight α = 1/32,
    as the paper; the ``sparse-topk`` preset uses 0.25. Training only (0 in evaluation, so
    validation losses compare with models trained without it).

    Measured by benchmarks/sparse_dead.py (see the README): on the embedded digits, 16-d
    codes with k = 2 had 62 % dead units and held-out MSE 0.0335 without it; on patches,
    the check, 128-d with k = 16 had 68 %."""

    def __init__(self, weight: float = 1 / 32, k_aux: int | None = None) -> None:
        super().__init__(weight)
        if k_aux is not None and (isinstance(k_aux, bool) or not isinstance(k_aux, int) or k_aux < 1):
            raise AekitError(f"auxk k_aux must be an integer ≥ 1, got {k_aux!r}")
        self.k_aux = k_aux

    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        pre = getattr(model.code, "pre_activation", None)
        model.code.pre_activation = None  # taken: no graph stays on the module (deepcopy)
        if not model.training or pre is None:
            return z.new_zeros(())
        live = z.detach().flatten(1)
        dead = ~(live > 0).any(0)  # (D,): units no sample of this batch selected
        k = min(pre.shape[1], self.k_aux or 2 * model.code.k)
        vals, idx = pre.masked_fill(~dead, float("-inf")).topk(k, dim=1)
        z_aux = torch.zeros_like(pre).scatter(1, idx, torch.relu(vals))  # −inf → 0: live ones
        out = model.decoder((live + z_aux).view_as(z))
        err = (model._output(out) - x).pow(2).flatten(1).sum(1).mean()
        return err * dead.any()  # no dead unit: no term (and no host sync to ask)


def sinkhorn_plan(cost: Tensor, alpha: float = 20.0, max_iter: int = 1000,
                  tol: float = 5e-3) -> Tensor:
    """Entropic optimal transport (Cuturi 2013) between uniform masses on the rows and the
    columns of ``cost`` (R, C): the plan π (R, C), Σπ = 1, each row carrying 1/R and each
    column 1/C, that minimises ⟨π, cost⟩ − H(π)/alpha. Sinkhorn's scaling iterations in
    float64 (exp(−alpha·cost) stays representable for costs up to ~35 at alpha 20), stopped
    when the column sums are within ``tol`` (L1) of 1/C. No gradient flows through the plan.

    Hand-written rather than POT's ``ot.sinkhorn``: the loop is a few lines and POT's wheel
    is 33 MB."""
    with torch.no_grad():
        c = cost.detach().double()
        rows, cols = c.shape
        a = torch.full((rows, 1), 1.0 / rows, dtype=c.dtype, device=c.device)
        b = torch.full((cols, 1), 1.0 / cols, dtype=c.dtype, device=c.device)
        kernel = torch.exp(-alpha * c)
        u = torch.full_like(a, 1.0 / rows)
        for it in range(max_iter):
            v = b / (kernel.T @ u + 1e-300)
            u = a / (kernel @ v + 1e-300)
            if it % 20 == 0 and (v * (kernel.T @ u) - b).abs().sum() < tol:
                break
        return (u * kernel * v.T).to(cost.dtype)


@PENALTIES.register("ecr", help="embedding clustering (ECRTM): weight · ⟨π, ‖t_k − e_v‖²⟩, "
                                "π the optimal transport of the ecr decoder's topic vectors "
                                "onto its word vectors, equal shares")
class EmbeddingClustering(Penalty):
    """Embedding clustering regularisation (Wu et al. 2023): the topic vectors t_k of an
    ``ecr`` topic decoder become the centres of word-vector clusters of equal size, so no two
    topics sit on the same words. The value is ⟨π, C⟩, C the squared distances and π the
    entropic optimal transport between the K topics and the V words (uniform masses;
    :func:`sinkhorn_plan`); its gradient is π (the plan is held fixed). A global term, not
    per sample: it is the same whatever the batch."""

    def __init__(self, weight: float = 250.0, alpha: float = 20.0, max_iter: int = 1000,
                 tol: float = 5e-3) -> None:
        super().__init__(weight)
        if alpha <= 0 or max_iter < 1:
            raise AekitError(f"ecr needs alpha > 0 and max_iter >= 1, got {alpha}, {max_iter}")
        self.alpha, self.max_iter, self.tol = float(alpha), int(max_iter), float(tol)

    def value(self, model: Autoencoder, x: Tensor, z: Tensor) -> Tensor:
        layer = getattr(model.decoder, "topics", None)
        if layer is None or not hasattr(layer, "cost"):
            raise AekitError("the ecr penalty needs the ecr topic decoder "
                             "(arch 'bow' with decoder='ecr')")
        cost = layer.cost()
        return (sinkhorn_plan(cost, self.alpha, self.max_iter, self.tol) * cost).sum()
