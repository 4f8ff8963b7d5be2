"""Measure the theory on embeddings a user brings: a real model's image and text vectors.

``analyze(image_emb, text_emb, labels=..., class_text_emb=..., temperature=...)`` takes
``n`` paired rows of image and text embeddings (NumPy arrays; any model: open_clip,
big_vision, a trained clipsim run) and computes what the simulations report without a
generator:

* the metrics of section 4 of docs/theory.md over all ``n`` pairs: margins with
  same-label negatives excluded (``clipsim.metrics.pair_margins``), the
  unexpected-positive rate, retrieval recall@k, positive cosine, modality gap,
  uniformity, and with class prompts the zero-shot top-r errors, accuracy and loss;
* for each batch size ``B`` of ``batch_sizes`` (the rows shuffled with ``seed`` and cut
  into ``n // B`` batches): the unexpected-positive rate, the E3 floor from duplicate
  labels, and, given the temperature, the CLIP loss with E1, E2 (in-batch), E3, E4 and
  E5 checked on every batch;
* the completeness profile ``(alpha(gamma), beta)`` of E4 over a ``gamma`` grid, with
  labels standing in for the latents (independent pairs: shuffled row ``2j`` against
  row ``2j + 1``), and E2 for zero-shot classification.

Labels are what "the same latent" means for real data: two pairs with equal labels
(the same class, or duplicate captions) are unexpected positives for each other. The
metric margin leaves them out, and E3 charges ``E[log n_i]`` for them.

Normalization: the theory scores unit vectors (``|s| <= M = 1``), as CLIP does. With
``normalize=True`` (the default) every row of ``image_emb``, ``text_emb`` and
``class_text_emb`` is scaled to unit norm first; with ``normalize=False`` the rows are
used as given and the score bound is ``M = max ||a_i|| max ||b_j||``. Rows must be
finite and of non-zero norm either way.

Memory: the ``n x n`` metrics go through the row-blocked paths of
:mod:`clipsim.metrics` (at least 64 rows a block above 8192 rows), zero-shot scores,
gathered rows and batches go in chunks of ``2**22`` entries, so nothing of size ``n x n``
or ``n x C`` is held; the peak is a few copies of the ``(n, d)`` rows, set by the
uniformity pass (1.61 GiB measured for n = 100,000, d = 512; ``python -m
benchmarks.analyze_memory`` and docs/real-models.md). Everything is computed in float32
(float64 under ``jax.enable_x64``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from clipsim import metrics, objectives, theory
from clipsim.metrics._blocked import SLAB_ENTRIES
from clipsim.metrics.similarity import NORM_FLOOR
from clipsim.theory.report import DEFAULT_TEMPERATURE_GRID, N_SIGMA, format_table

__all__ = ["Analysis", "AnalysisInputError", "analyze", "DEFAULT_BATCH_SIZES", "MIN_BLOCK_ROWS"]

DEFAULT_BATCH_SIZES = (32, 256)
"""Batch sizes at which the batch-level statements are measured by default."""

MIN_BLOCK_ROWS = 64
"""Fewest rows per block of the ``n x n`` metrics (above ``SLAB_ENTRIES // 64`` rows).

The library default ``SLAB_ENTRIES // n`` rows falls to a handful of rows at
n = 100,000, where each block re-reads all of ``emb_b`` for a few rows of scores;
64 rows keep a slab at ``64 n`` entries (25 MiB in float32 at n = 100,000)."""

_CHUNK_ENTRIES = 1 << 22
"""Entries (16 MiB in float32) of one chunk: zero-shot class scores (rows x C), batch
scores (batches x B x B), and the embedding rows a chunk gathers (rows x d)."""


class AnalysisInputError(ValueError):
    """An input array of ``analyze`` is unusable; the one-line message names the array."""


@dataclass(frozen=True)
class Analysis(Mapping[str, float]):
    """What ``analyze`` measured on a set of embeddings.

    A read-only mapping of metric name -> value over all ``n`` pairs
    (``analysis["margin_median"]``), with the batch-level and statement-level results
    beside it.

    Attributes:
        metrics: scalar metrics over all pairs (see :func:`analyze`).
        batches: one dict per batch size: ``batch_size``, ``num_batches``,
            ``unexpected_positive_rate`` (measured on the batches) and
            ``unexpected_positive_rate_expected`` (over random batches of this set),
            ``floor`` (E3, exact for random batches of this set), ``floor_iid`` (for
            i.i.d. draws from the label frequencies), ``floor_batches`` (mean of
            ``log n_i`` on the batches), ``margin_threshold`` (``tau log(B - 1)``),
            ``frac_margin_above_threshold``, ``clip_loss`` and ``clip_loss_stderr``
            (NaN without a temperature).
        bounds: the exact statements as rows (``statement``, ``measured``, ``bound``,
            ``holds``, ``mc_error``, ``check``, ``tolerance``, ``verdict``), in the
            format of :func:`clipsim.theory.report.bounds_table`.
        profile: the completeness profile: ``gammas``, ``alpha``, ``alpha_stderr``,
            ``beta``, ``beta_stderr``, ``num_pairs``.
        settings: the inputs' sizes and the options used.
        arrays: per-pair arrays for figures (not in ``to_dict``): ``margins`` (n,),
            ``positive_scores`` (n,), ``negative_scores`` and ``negative_same_label``
            (n // 2,), and ``confusion`` (C, C) counts (rows true, columns predicted)
            when class prompts are given.
    """

    metrics: dict[str, float]
    batches: list[dict[str, Any]]
    bounds: list[dict[str, Any]]
    profile: dict[str, Any]
    settings: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``settings``, ``metrics``, ``batches``, ``bounds``, ``profile``."""
        return {"settings": self.settings, "metrics": self.metrics, "batches": self.batches,
                "bounds": self.bounds, "profile": self.profile}

    def table(self) -> str:
        """The metrics, the per-batch-size table and the statement table as text."""
        width = max(len(k) for k in self.metrics)
        lines = [f"{k:<{width}}  {v: .4f}" for k, v in self.metrics.items()]
        cols = ("batch_size", "num_batches", "unexpected_positive_rate", "floor",
                "floor_batches", "clip_loss", "margin_threshold", "frac_margin_above_threshold")
        heads = ("B", "batches", "unexp.pos", "E3 floor", "log n_i", "L_clip", "tau log(B-1)",
                 "m > it")
        lines += ["", "  ".join(f"{h:>12}" for h in heads)]
        for row in self.batches:
            lines.append("  ".join(f"{row[c]:>12}" if isinstance(row[c], int)
                                   else f"{row[c]:>12.4f}" for c in cols))
        p = self.profile
        lines += ["", f"completeness profile (labels as latents, {p['num_pairs']} independent "
                      f"pairs): beta = {p['beta']:.4f}"]
        lines.append("  ".join(f"alpha({g:.2f}) = {a:.4f}"
                               for g, a in list(zip(p["gammas"], p["alpha"], strict=True))[::5]))
        if self.bounds:
            lines += ["", format_table(self.bounds)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


# ------------------------------------------------------------------ input checks
def _fail(message: str) -> None:
    raise AnalysisInputError(message)


def _float_matrix(x: Any, name: str, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D real floating array in ``dtype``, checked finite and non-zero; and its row norms."""
    if x is None:
        _fail(f"{name}: missing (an (n, d) array of embeddings is required)")
    arr = np.asarray(x)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.floating):
        _fail(f"{name}: expected a floating-point array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        _fail(f"{name}: expected a 2-D (rows, dim) array, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        _fail(f"{name}: expected at least one row and one column, got shape {arr.shape}")
    arr = arr.astype(dtype, copy=False)
    norms = np.sqrt(np.einsum("ij,ij->i", arr, arr, dtype=np.float64))
    bad = ~np.isfinite(norms)  # a NaN or inf entry makes its row's norm non-finite
    if bad.any():
        rows = np.flatnonzero(bad)
        _fail(f"{name}: {rows.size} row(s) hold NaN or inf (first: row {rows[0]})")
    small = norms < NORM_FLOOR
    if small.any():
        rows = np.flatnonzero(small)
        _fail(f"{name}: {rows.size} row(s) have zero norm (below {NORM_FLOOR:g}; first: row "
              f"{rows[0]})")
    return arr, norms


def _label_vector(x: Any, n: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        _fail(f"labels: expected a 1-D array of n = {n} integers, got shape {arr.shape}")
    if arr.shape[0] != n:
        _fail(f"labels: expected {n} labels (one per pair), got {arr.shape[0]}")
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        ok = np.isfinite(arr) & (arr == np.round(arr))
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            _fail(f"labels: must be integers, row {row} is {arr[row]!r}")
        return arr.astype(np.int64)
    _fail(f"labels: expected integers, got dtype {arr.dtype}")
    raise AssertionError  # unreachable


def _positive_ints(values: Sequence[int], name: str, low: int, high: int | None = None
                   ) -> tuple[int, ...]:
    out = tuple(values)
    if not out:
        _fail(f"{name}: give at least one value")
    for v in out:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low \
                or (high is not None and v > high):
            rng = f">= {low}" if high is None else f"in [{low}, {high}]"
            _fail(f"{name}: {v!r} is invalid: must be an integer {rng}")
    return tuple(int(v) for v in out)


# ------------------------------------------------------------------ pieces
def _block(n: int) -> int | None:
    """Rows per block for the n x n metrics: the library default unless it falls below 64."""
    return None if SLAB_ENTRIES // n >= MIN_BLOCK_ROWS else min(n, MIN_BLOCK_ROWS)


def _pool_floor(group_sizes: np.ndarray, batch_size: int) -> tuple[float, float]:
    r"""E3 floor and unexpected-positive rate of random batches drawn without replacement.

    A row in a label group of size ``s`` meets ``n_i - 1 ~ Hyp(n - 1, s - 1, B - 1)``
    rows of its group in a batch of ``B`` drawn from the ``n`` rows, so
    ``E[log n_i] = sum_s (n_s / n) E[log(1 + Hyp)]`` and
    ``P(n_i > 1) = sum_s (n_s / n) (1 - P(Hyp = 0))``, with ``n_s`` the rows in groups of
    size ``s``.
    """
    n = int(group_sizes.sum())
    sizes, groups = np.unique(group_sizes, return_counts=True)
    weights = sizes * groups / n
    k = np.arange(batch_size)
    pmf = stats.hypergeom.pmf(k[None, :], n - 1, sizes[:, None] - 1, batch_size - 1)
    floor = float(weights @ (pmf @ np.log1p(k)))
    rate = float(weights @ (1.0 - pmf[:, 0]))
    return floor, rate


def _zero_shot(image: jax.Array, classes: jax.Array, labels: np.ndarray, top_r: tuple[int, ...],
               temperature: float) -> tuple[dict[str, float], list[dict], np.ndarray]:
    """Zero-shot metrics, the E2 zero-shot rows and the confusion matrix, in row chunks."""
    n, c = image.shape[0], classes.shape[0]
    rows = max(1, _CHUNK_ENTRIES // max(c, image.shape[1]))
    tau = temperature if math.isfinite(temperature) else 1.0
    rs = tuple(r for r in top_r if r < c)
    sums: dict[str, float] = {}
    confusion = np.zeros((c, c), np.int64)
    e2 = {r: {"bounds": 0.0, "value": 0.0} for r in rs}
    for start in range(0, n, rows):
        sl = slice(start, min(n, start + rows))
        img, lab = image[sl], jnp.asarray(labels[sl], jnp.int32)
        w = (sl.stop - sl.start) / n
        part = metrics.zero_shot_metrics(img, classes, lab, top_r=top_r, temperature=tau)
        for k, v in part.items():
            sums[k] = sums.get(k, 0.0) + w * float(v)
        s = metrics.scores(img, classes)
        np.add.at(confusion, (labels[sl], np.asarray(jnp.argmax(s, axis=1))), 1)
        for r in rs:
            b = theory.zero_shot_ranking_bound(s, lab, r, DEFAULT_TEMPERATURE_GRID)
            e2[r]["bounds"] = e2[r]["bounds"] + w * np.asarray(b.bounds, np.float64)
            e2[r]["value"] += w * float(b.value)
    if not math.isfinite(temperature):
        sums["zs_loss"] = float("nan")
    out_rows = []
    for r in rs:
        bounds = e2[r]["bounds"]
        i = int(np.argmin(bounds))
        value, bound = e2[r]["value"], float(bounds[i])
        tol = 1e-5 * (1.0 + bound)  # float32 rounding of the chunked means
        out_rows.append(_row(f"E2 zero-shot top-{r} err <= min_tau E[l_zs]/log(1+{r})",
                             value, bound, value <= bound + tol))
    return sums, out_rows, confusion


def _row(statement: str, measured: float, bound: float, holds: bool, mc_error: float = 0.0, *,
         check: str = "exact", direction: str = "<=") -> dict[str, Any]:
    """One statement row, in the format of ``clipsim.theory.report.bounds_table``."""
    measured, bound, holds = float(measured), float(bound), bool(holds)
    strictly = measured <= bound if direction == "<=" else measured >= bound
    if not holds:
        verdict = "FAILS"
    elif check == "monte_carlo" and not strictly:
        verdict = f"holds within {N_SIGMA:g} s.e."
    else:
        verdict = "holds"
    tolerance = "rounding" if check == "exact" else f"{N_SIGMA:g} s.e."
    return {"statement": statement, "measured": measured, "bound": bound, "holds": holds,
            "mc_error": float(mc_error), "check": check, "tolerance": tolerance,
            "verdict": verdict}


def _batch_program(tau: float, rs: tuple[int, ...]):
    """jit(vmap) of the per-batch calculators over a chunk of (B, B) score matrices."""

    def one(s: jax.Array, codes: jax.Array) -> dict[str, jax.Array]:
        sw = theory.row_loss_sandwich(s, tau)
        sat = theory.saturation_check(s, tau)
        rows, cols = objectives.clip_loss_from_scores(s, tau)
        counts = theory.latent_collision_counts(codes[:, None])
        eps = 1e-5 * jnp.maximum(1.0, jnp.abs(sw.value))
        out = {
            "row_loss": jnp.mean(sw.value), "lower": jnp.mean(sw.lower),
            "upper": jnp.mean(sw.upper), "max_loss": jnp.max(sw.value),
            "lower_holds": jnp.all(sw.value >= sw.lower - eps), "upper_holds": jnp.all(sw.holds),
            "clip_loss": 0.5 * (jnp.mean(rows) + jnp.mean(cols)),
            "e5_value": sat.value, "e5_bound": sat.bound, "e5_holds": sat.holds,
            "log_n": jnp.mean(jnp.log(counts.astype(s.dtype))),
            "unexpected": jnp.mean((counts > 1).astype(s.dtype)),
        }
        for r in rs:
            rb = theory.ranking_bound(s, tau, r)
            out[f"e2_{r}_value"], out[f"e2_{r}_bound"], out[f"e2_{r}_holds"] = (
                rb.value, rb.bound, rb.holds)
        return out

    def counts_only(codes: jax.Array) -> dict[str, jax.Array]:
        counts = theory.latent_collision_counts(codes[:, None])
        return {"log_n": jnp.mean(jnp.log(counts.astype(jnp.result_type(float)))),
                "unexpected": jnp.mean((counts > 1).astype(jnp.result_type(float)))}

    return jax.jit(jax.vmap(one)), jax.jit(jax.vmap(counts_only))


def _batch_sizes_pass(a: jax.Array, b: jax.Array, codes: np.ndarray, perm: np.ndarray,
                      batch_size: int, tau: float | None, top_r: tuple[int, ...],
                      done: Any) -> dict[str, np.ndarray]:
    """Per-batch statistics of ``n // B`` batches of the permuted rows, in chunks."""
    nb = a.shape[0] // batch_size
    per_batch = batch_size * max(batch_size, a.shape[1])  # its scores or its gathered rows
    chunk = max(1, _CHUNK_ENTRIES // per_batch)
    rs = tuple(r for r in top_r if r < batch_size)
    full, counts_only = _batch_program(tau if tau is not None else 1.0, rs)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, nb, chunk):
        stop = min(nb, start + chunk)
        idx = perm[start * batch_size: stop * batch_size]
        c = jnp.asarray(codes[idx].reshape(stop - start, batch_size))
        if tau is None:
            out = counts_only(c)
        else:
            ia = a[idx].reshape(stop - start, batch_size, -1)
            ib = b[idx].reshape(stop - start, batch_size, -1)
            out = full(jnp.einsum("kid,kjd->kij", ia, ib), c.astype(a.dtype))
        parts.append({k: np.asarray(v) for k, v in out.items()})
        done(stop - start)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _prepare(x: np.ndarray, normalize: bool) -> jax.Array:
    """``x`` on the device, rows scaled to unit norm when ``normalize``."""
    return _normalize_jit(x) if normalize else jnp.asarray(x)


_normalize_jit = jax.jit(metrics.l2_normalize)
_positive_dots = jax.jit(lambda a, b: jnp.einsum("kd,kd->k", a, b))


@jax.jit
def _gathered_dots(a: jax.Array, b: jax.Array, i: jax.Array, j: jax.Array) -> jax.Array:
    return jnp.einsum("kd,kd->k", a[i], b[j])


def _row_dots(a: jax.Array, b: jax.Array, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``<a_i, b_j>`` for index vectors ``i``, ``j``, gathering a chunk of rows at a time."""
    rows = max(1, _CHUNK_ENTRIES // a.shape[1])
    return np.concatenate([np.asarray(_gathered_dots(a, b, jnp.asarray(i[k:k + rows]),
                                                     jnp.asarray(j[k:k + rows])))
                           for k in range(0, len(i), rows)])


def _mean_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, np.float64)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(x.mean()), se


# ------------------------------------------------------------------ the entry point
def analyze(
    image_emb: Any,
    text_emb: Any,
    *,
    labels: Any = None,
    class_text_emb: Any = None,
    temperature: float | None = None,
    normalize: bool = True,
    batch_sizes: Sequence[int] | None = None,
    top_r: Sequence[int] = (1, 5),
    recall_ks: Sequence[int] | None = None,
    gammas: Any = None,
    seed: int = 0,
    progress: bool = False,
) -> Analysis:
    r"""Metrics and exact statements of docs/theory.md measured on paired embeddings.

    Row ``i`` of ``image_emb`` and row ``i`` of ``text_emb`` are a positive pair; every
    other row is a negative. With scores :math:`s_{ij} = \langle a_i, b_j \rangle` on
    the (normalized) rows and labels :math:`c_i`:

    .. math::
        m_i = s_{ii} - \max_{j \ne i,\ c_j \ne c_i} s_{ij}, \qquad
        u_i = \#\{j \ne i : c_j = c_i\}.

    ``metrics`` holds, over all ``n`` pairs (reductions as in :mod:`clipsim.metrics`):
    ``margin_median``, ``margin_p05``, ``margin_frac_nonpositive``,
    ``unexpected_positive_rate``, ``unexpected_positive_mean`` (medians, percentile and
    means over pairs), ``recall_a2b@k`` and ``recall_b2a@k`` (image to text and back;
    means over queries), ``positive_cosine`` (mean), ``modality_gap`` (norm of the
    difference of the mean rows), ``uniformity_a`` and ``uniformity_b`` (log of the mean
    over unordered pairs), with class prompts ``zs_top{r}_error``, ``zs_accuracy`` and
    ``zs_loss`` (means over the ``n`` images; the loss is NaN without a temperature),
    and ``temperature``, ``score_bound`` (M), ``num_rows``, ``dim``, ``num_labels``,
    ``image_norm_mean`` and ``text_norm_mean`` (of the rows as given).

    Batches: the rows are permuted with ``seed`` and cut into ``n // B`` batches of
    each ``B`` (the remainder is left out). With a temperature, each batch's CLIP loss
    is checked against E1 (sandwich and score range), E2 (in-batch top-r), E5
    (saturation at its smallest margin), and the mean over batches against E3 (the floor
    of these labels) and E4 (Jensen and profile bounds from the independent pairs), in
    the row format of :func:`clipsim.theory.report.bounds_table`. Without one, only the
    temperature-free parts are computed (collisions, floors, the profile, zero-shot E2).
    E3 and E4 assume image and text independent given the label, which real data only
    approximates: read a failure of those rows as a property of the labels.

    Args:
        image_emb: image embeddings, shape ``(n, d)``, ``n >= 2``, a floating dtype.
        text_emb: text embeddings, shape ``(n, d)``; row ``i`` pairs with
            ``image_emb[i]``.
        labels: integer label per pair, shape ``(n,)``: pairs with equal labels share
            a latent (same class, duplicate caption). None: every pair is its own.
        class_text_emb: class prompt embeddings, shape ``(C, d)``, ``C >= 2``, for
            zero-shot classification of the images; needs ``labels`` in ``[0, C)``.
        temperature: the model's temperature ``tau > 0`` (``1 / logit_scale.exp()``
            for open_clip), or None.
        normalize: scale every row to unit norm first (default); False uses the rows
            as given.
        batch_sizes: batch sizes ``B`` in ``[2, n]`` for the batch-level statements;
            default those of ``DEFAULT_BATCH_SIZES`` up to ``n`` (else ``n``).
        top_r: ranks for the zero-shot errors and E2, positive integers.
        recall_ks: ``k`` of retrieval recall@k, positive integers; default ``top_r``
            (as ``clipsim.evaluate``).
        gammas: margin levels of the completeness profile, 1-D, ``>= 0``; default 21
            values from 0 to ``2M``.
        seed: seed of the row permutation that forms batches and independent pairs.
        progress: show a progress bar (tqdm) over the stages and batches.

    Returns:
        An :class:`Analysis`.

    Raises:
        AnalysisInputError: an array is missing, has the wrong dtype or shape, holds a
            NaN, inf or zero-norm row, or the labels are not integers (or out of
            ``[0, C)`` with class prompts); the message names the array.

    Example:
        >>> import numpy as np                                        # doctest: +SKIP
        >>> a = np.random.default_rng(0).normal(size=(512, 16))        # doctest: +SKIP
        >>> clipsim.analyze(a, a + 0.1, temperature=0.05)["modality_gap"]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    dtype = np.float64 if jax.config.jax_enable_x64 else np.float32
    a_np, norms_a = _float_matrix(image_emb, "image", dtype)
    b_np, norms_b = _float_matrix(text_emb, "text", dtype)
    n, d = a_np.shape
    if b_np.shape[0] != n:
        _fail(f"text: expected {n} rows to match image, got {b_np.shape[0]}")
    if b_np.shape[1] != d:
        _fail(f"text: expected dimension {d} to match image, got {b_np.shape[1]}")
    if n < 2:
        _fail(f"image: expected at least 2 rows (a pair and a negative), got {n}")
    codes_src = np.arange(n) if labels is None else _label_vector(labels, n)
    c_np = None
    if class_text_emb is not None:
        c_np, _ = _float_matrix(class_text_emb, "class_text", dtype)
        if c_np.shape[1] != d:
            _fail(f"class_text: expected dimension {d} to match image, got {c_np.shape[1]}")
        if c_np.shape[0] < 2:
            _fail(f"class_text: expected at least 2 class prompts, got {c_np.shape[0]}")
        if labels is None:
            _fail("labels: missing (class_text needs the true class of every image)")
        bad = (codes_src < 0) | (codes_src >= c_np.shape[0])
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            _fail(f"labels: must lie in [0, {c_np.shape[0]}) to index class_text, row {row} "
                  f"is {codes_src[row]}")
    if temperature is not None:
        t = np.asarray(temperature)
        if t.ndim != 0 or not np.issubdtype(t.dtype, np.number) or not np.isfinite(t) \
                or float(t) <= 0:
            _fail(f"temperature: expected one number > 0, got {temperature!r}")
        temperature = float(t)
    if batch_sizes is None:
        batch_sizes = tuple(bs for bs in DEFAULT_BATCH_SIZES if bs <= n) or (n,)
    batch_sizes = _positive_ints(batch_sizes, "batch_sizes", 2, n)
    top_r = _positive_ints(top_r, "top_r", 1)
    recall_ks = top_r if recall_ks is None else _positive_ints(recall_ks, "recall_ks", 1)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        _fail(f"seed: expected an integer, got {seed!r}")
    m_bound = 1.0 if normalize else float(norms_a.max() * norms_b.max())
    if gammas is None:
        gammas = np.linspace(0.0, 2.0 * m_bound, 21)
    gammas = np.asarray(gammas, dtype)
    if gammas.ndim != 1 or gammas.size < 1 or not np.all(np.isfinite(gammas)) \
            or np.any(gammas < 0):
        _fail(f"gammas: expected a 1-D array of margin levels >= 0, got {gammas!r}")

    _, codes = np.unique(codes_src, return_inverse=True)  # dense codes, exact in float32
    codes = codes.astype(np.int64).reshape(-1)
    # Progress in units of one pass over the n x n scores (margins 1, retrieval 2,
    # uniformity 1, zero-shot C / n, batches B / n each).
    work = {"margins": 1.0, "retrieval": 2.0, "alignment": 1.0,
            "zero_shot": 0.0 if c_np is None else c_np.shape[0] / n,
            "batch": [bs / n for bs in batch_sizes]}
    total = sum(v for k, v in work.items() if k != "batch") + sum(
        (n // bs) * w for bs, w in zip(batch_sizes, work["batch"], strict=True))
    bar = tqdm(total=round(total, 6), desc="clipsim analyze", disable=not progress,
               leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    try:
        # Unit rows (or the rows as given) as JAX arrays; the NumPy inputs are released
        # here when the caller passed them without keeping a reference.
        a, b = _prepare(a_np, normalize), _prepare(b_np, normalize)
        del image_emb, text_emb, a_np, b_np
        latents = jnp.asarray(codes, a.dtype)[:, None]
        block = _block(n)

        out: dict[str, float] = {}
        margins, counts = metrics.pair_margins(a, b, latents, block=block)
        out.update({k: float(v) for k, v in metrics.margin_summary(margins, counts).items()})
        margins = np.asarray(margins)
        bar.update(work["margins"])
        out.update({k: float(v) for k, v in
                    metrics.retrieval_recall(a, b, ks=recall_ks, block=block).items()})
        bar.update(work["retrieval"])
        out["positive_cosine"] = float(metrics.positive_cosine(a, b))
        out["modality_gap"] = float(metrics.modality_gap(a, b))
        out["uniformity_a"] = float(metrics.uniformity(a, block=block))
        out["uniformity_b"] = float(metrics.uniformity(b, block=block))
        bar.update(work["alignment"])
        tau_value = float("nan") if temperature is None else temperature

        bound_rows: list[dict[str, Any]] = []
        confusion = None
        if c_np is not None:
            classes = jnp.asarray(c_np)
            if normalize:
                classes = metrics.l2_normalize(classes)
            zs, zs_rows, confusion = _zero_shot(a, classes, codes_src, top_r, tau_value)
            out.update(zs)
            bound_rows += zs_rows
            bar.update(work["zero_shot"])

        # Independent pairs: permuted row 2j against row 2j + 1.
        perm = np.random.default_rng(int(seed)).permutation(n)
        first, second = perm[0: n - 1: 2], perm[1: n: 2]
        positive = np.asarray(_positive_dots(a, b))
        negatives = _row_dots(a, b, first, second)
        deltas = negatives - positive[first]
        same = codes[first] == codes[second]
        prof = theory.completeness_profile(deltas, same, gammas)
        profile = {"gammas": np.asarray(prof.gammas), "alpha": np.asarray(prof.alpha),
                   "alpha_stderr": np.asarray(prof.alpha_stderr), "beta": float(prof.beta),
                   "beta_stderr": float(prof.beta_stderr), "num_pairs": int(first.size)}

        group_sizes = np.bincount(codes)
        group_sizes = group_sizes[group_sizes > 0]
        freqs = group_sizes / n
        batches: list[dict[str, Any]] = []
        for bs in batch_sizes:
            stats_b = _batch_sizes_pass(a, b, codes, perm, bs, temperature, top_r,
                                        lambda k, bs=bs: bar.update(k * bs / n))
            nb = n // bs
            floor, rate = _pool_floor(group_sizes, bs)
            threshold = tau_value * math.log(bs - 1)
            row = {
                "batch_size": bs, "num_batches": nb,
                "unexpected_positive_rate": float(np.mean(stats_b["unexpected"])),
                "unexpected_positive_rate_expected": rate,
                "floor": floor,
                "floor_iid": theory.collision_floor_onehot(bs, freqs).value,
                "floor_batches": float(np.mean(stats_b["log_n"])),
                "margin_threshold": threshold,
                "frac_margin_above_threshold": (
                    float(np.mean(margins[~np.isnan(margins)] > threshold))
                    if temperature is not None else float("nan")),
                "clip_loss": float("nan"), "clip_loss_stderr": float("nan"),
            }
            if temperature is not None:
                bound_rows += _batch_rows(stats_b, row, bs, temperature, m_bound, top_r,
                                          deltas, same, gammas, nb)
            batches.append(row)
    finally:
        bar.close()

    out.update({"temperature": tau_value, "score_bound": m_bound, "num_rows": float(n),
                "dim": float(d), "num_labels": float(group_sizes.size),
                "image_norm_mean": float(norms_a.mean()),
                "text_norm_mean": float(norms_b.mean())})
    arrays = {"margins": margins, "positive_scores": positive, "negative_scores": negatives,
              "negative_same_label": same}
    if confusion is not None:
        arrays["confusion"] = confusion
    settings = {"num_rows": n, "dim": d, "normalize": bool(normalize),
                "labels": labels is not None,
                "num_classes": None if c_np is None else int(c_np.shape[0]),
                "temperature": temperature, "batch_sizes": list(batch_sizes),
                "top_r": list(top_r), "recall_ks": list(recall_ks), "seed": int(seed),
                "dtype": np.dtype(dtype).name}
    profile = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in profile.items()}
    return Analysis(metrics=out, batches=batches, bounds=bound_rows, profile=profile,
                    settings=settings, arrays=arrays)


def _batch_rows(stats_b: dict[str, np.ndarray], row: dict[str, Any], bs: int, tau: float,
                m_bound: float, top_r: tuple[int, ...], deltas: np.ndarray, same: np.ndarray,
                gammas: np.ndarray, nb: int) -> list[dict[str, Any]]:
    """The statement rows of one batch size (needs the temperature); fills the loss in ``row``."""
    tag = f" [B={bs}]"
    rows = [
        _row("E1 l_i >= log(1+e^(-m_i/tau))" + tag, stats_b["row_loss"].mean(),
             stats_b["lower"].mean(), stats_b["lower_holds"].all(), direction=">="),
        _row("E1 l_i <= log(1+(B-1)e^(-m_i/tau))" + tag, stats_b["row_loss"].mean(),
             stats_b["upper"].mean(), stats_b["upper_holds"].all()),
    ]
    upper = float(theory.score_range_bounds(bs, tau, m_bound).upper)
    top = float(stats_b["max_loss"].max())
    rows.append(_row("E1 l_i <= log(1+(B-1)e^(2M/tau))" + tag, top, upper,
                     top <= upper * (1 + 1e-6) + 1e-6))
    for r in top_r:
        if r < bs:
            rows.append(_row(f"E2 P(pos not top-{r}) <= E[l]/log(1+{r})" + tag,
                             stats_b[f"e2_{r}_value"].mean(), stats_b[f"e2_{r}_bound"].mean(),
                             stats_b[f"e2_{r}_holds"].all()))
    rows.append(_row("E5 L <= log(1+(B-1)e^(-mu/tau))" + tag, stats_b["e5_value"].mean(),
                     stats_b["e5_bound"].mean(), stats_b["e5_holds"].all()))
    loss, loss_se = _mean_se(stats_b["clip_loss"])
    row["clip_loss"], row["clip_loss_stderr"] = loss, loss_se
    if nb >= 2:
        check = theory.clip_floor_check(loss, loss_se, row["floor"], n_sigma=N_SIGMA)
        rows.append(_row("E3 E[L_clip] >= E[log n_i]" + tag, loss, check.bound, check.holds,
                         check.stderr, check="monte_carlo", direction=">="))
        row_mean, row_se = _mean_se(stats_b["row_loss"])
        best = theory.best_profile_bound(deltas, same, tau, bs, m_bound, gammas).best
        for name, bound, bound_se in (("Jensen", best.jensen, best.jensen_stderr),
                                      ("profile", best.profile, best.profile_stderr)):
            c = theory.mean_loss_upper_check(row_mean, row_se, float(bound), float(bound_se),
                                             n_sigma=N_SIGMA)
            rows.append(_row(f"E4 E[l] <= {name} bound" + tag, row_mean, c.bound, c.holds,
                             c.stderr, check="monte_carlo"))
    return rows
