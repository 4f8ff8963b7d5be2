"""``clipsim.analyze`` and ``clipsim analyze``: embeddings a user brings -> metrics and statements.

The round trip: a trained clipsim model's embeddings, written to ``.npz`` and read by
``clipsim analyze``, give the numbers of ``clipsim.evaluate`` on the same samples
(built from the run's evaluation key exactly as ``clipsim.evaluation`` builds them).
Then NumPy references for the margins and the batch collision counts, a hand-computed
floor, and every bad input refused with one line, exit code 2 and nothing written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import clipsim
from clipsim.analysis import Analysis, AnalysisInputError, _pool_floor, analyze
from clipsim.cli import main
from clipsim.data import prompts, sample_pairs, sample_test_images
from clipsim.models import normalize_rows
from clipsim.train.loop import STREAM_EVAL, embedding_functions, world_for
from tests.conftest import tiny_config

TOL = {"rtol": 1e-5, "atol": 1e-5}


# ------------------------------------------------------------------ the round trip
@pytest.fixture(scope="session")
def trained_run():
    """A tiny one-hot run (K = 4, d = 4), its evaluation report and evaluate's samples."""
    cfg = tiny_config(**{"eval.num_samples": 256, "train.steps": 200})
    result = clipsim.train(cfg)
    report = clipsim.evaluate(result)
    ec = cfg.eval
    key = jax.random.fold_in(result.key, STREAM_EVAL)
    k_pairs, k_test, k_prompts = jax.random.split(key, 3)
    world = world_for(cfg)
    f, g = embedding_functions(result.params, cfg)
    pairs = sample_pairs(cfg.data, world, key=k_pairs, n=ec.num_samples)
    test = sample_test_images(
        cfg.data, world, key=k_test, n=ec.num_samples, class_probs=ec.test_class_probs,
        image_unique_scale=ec.test_image_unique_scale, noise_scale=ec.test_noise_scale)
    texts = prompts(cfg.data, world, key=k_prompts, num_prompts=ec.num_prompts)
    class_emb = jnp.mean(g(texts), axis=1)
    if cfg.model.normalize:
        class_emb = normalize_rows(class_emb)
    samples = {
        "image": np.asarray(f(pairs.x)), "text": np.asarray(g(pairs.y)),
        "labels": np.asarray(pairs.labels), "latents": np.asarray(pairs.z),
        "test_image": np.asarray(f(test.x)), "test_labels": np.asarray(test.labels),
        "class_text": np.asarray(class_emb),
    }
    return cfg, report, samples


def _analyze_file(tmp_path, name: str, *extra: str, **arrays) -> dict:
    path = tmp_path / f"{name}.npz"
    np.savez(path, **arrays)
    out = tmp_path / f"{name}_out"
    assert main(["analyze", str(path), "--out", str(out), "--quiet", *extra]) == 0
    assert (out / "analysis.png").stat().st_size > 0
    return json.loads((out / "analysis.json").read_text())


def test_round_trip_pairs_give_the_margins_gap_and_retrieval_of_evaluate(trained_run, tmp_path):
    cfg, report, s = trained_run
    assert cfg.model.normalize and cfg.data.family == "onehot"  # labels <=> latents
    record = _analyze_file(tmp_path, "pairs", "--batch-sizes", "16",
                           "--top-r", *map(str, cfg.eval.top_r), image=s["image"],
                           text=s["text"], labels=s["labels"],
                           temperature=np.float32(report["eval_temperature"]))
    got = record["metrics"]
    keys = ["margin_median", "margin_p05", "margin_frac_nonpositive",
            "unexpected_positive_rate", "unexpected_positive_mean", "positive_cosine",
            "modality_gap", "uniformity_a", "uniformity_b"]
    keys += [f"recall_{d}@{k}" for d in ("a2b", "b2a") for k in cfg.eval.top_r]
    for key in keys:
        np.testing.assert_allclose(got[key], report[key], **TOL, err_msg=key)
    assert 0.0 < report["unexpected_positive_rate"] <= 1.0  # labels collide: exclusion matters
    assert record["settings"]["num_rows"] == cfg.eval.num_samples


def test_round_trip_test_images_give_the_zero_shot_errors_of_evaluate(trained_run, tmp_path):
    cfg, report, s = trained_run
    labels = s["test_labels"]
    record = _analyze_file(tmp_path, "zero_shot", "--batch-sizes", "16",
                           "--top-r", *map(str, cfg.eval.top_r),
                           image=s["test_image"], text=s["class_text"][labels],
                           labels=labels, class_text=s["class_text"],
                           temperature=np.float32(report["eval_temperature"]))
    got = record["metrics"]
    keys = [f"zs_top{r}_error" for r in cfg.eval.top_r] + ["zs_accuracy", "zs_loss"]
    for key in keys:
        np.testing.assert_allclose(got[key], report[key], **TOL, err_msg=key)
    e2 = [row for row in record["bounds"] if row["statement"].startswith("E2 zero-shot")]
    assert e2 and all(row["holds"] for row in e2)
    np.testing.assert_allclose(e2[0]["measured"], report["zs_top1_error"], **TOL)


def test_parquet_and_npz_give_the_same_report(trained_run, tmp_path):
    pd = pytest.importorskip("pandas")
    _, report, s = trained_run
    n, c = len(s["labels"]), len(s["class_text"])
    arrays = {"image": s["image"], "text": s["text"], "labels": s["labels"],
              "class_text": s["class_text"]}
    from_npz = _analyze_file(tmp_path, "both", "--temperature", "0.1", **arrays)
    frame = pd.DataFrame({"image": list(s["image"]), "text": list(s["text"]),
                          "labels": s["labels"],
                          "class_text": list(s["class_text"]) + [None] * (n - c)})
    path = tmp_path / "both.parquet"
    frame.to_parquet(path)
    out = tmp_path / "parquet_out"
    assert main(["analyze", str(path), "--out", str(out), "--quiet", "--temperature",
                 "0.1"]) == 0
    from_parquet = json.loads((out / "analysis.json").read_text())
    assert from_parquet["metrics"] == from_npz["metrics"]
    assert from_parquet["bounds"] == from_npz["bounds"]


# ------------------------------------------------------------------ references
def _clustered(n: int, d: int, k: int, seed: int = 0, noise: float = 0.6):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    labels = rng.integers(0, k, n)
    image = centres[labels] + noise * rng.normal(size=(n, d))
    text = centres[labels] + noise * rng.normal(size=(n, d))
    return image.astype(np.float32), text.astype(np.float32), labels, centres.astype(np.float32)


def test_margins_and_collisions_match_a_numpy_reference():
    # n = 1100 >= BLOCKED_MIN_ROWS: the row-blocked metric paths.
    image, text, labels, _ = _clustered(1100, 8, 30)
    res = analyze(image, text, labels=labels * 7 + 3, batch_sizes=(10,), seed=3)
    a = image / np.linalg.norm(image, axis=1, keepdims=True)
    b = text / np.linalg.norm(text, axis=1, keepdims=True)
    s = a.astype(np.float64) @ b.T.astype(np.float64)
    same = labels[:, None] == labels[None, :]
    neg = np.where(same, -np.inf, s)  # the diagonal is same-label too
    margins = np.diag(s) - neg.max(axis=1)
    np.testing.assert_allclose(res.arrays["margins"], margins, atol=2e-5)
    assert res["margin_median"] == pytest.approx(np.median(margins), abs=2e-5)
    assert res["unexpected_positive_mean"] == pytest.approx(same.sum(1).mean() - 1)
    assert res["modality_gap"] == pytest.approx(np.linalg.norm(a.mean(0) - b.mean(0)), abs=1e-5)
    # batches: the rows permuted with the seed, cut into n // B batches
    perm = np.random.default_rng(3).permutation(1100)[:1100 // 10 * 10].reshape(-1, 10)
    lab = labels[perm]
    counts = (lab[:, :, None] == lab[:, None, :]).sum(-1)
    row = res.batches[0]
    assert row["num_batches"] == 110
    assert row["unexpected_positive_rate"] == pytest.approx(np.mean(counts > 1))
    assert row["floor_batches"] == pytest.approx(np.mean(np.log(counts)), rel=1e-5)
    assert math.isnan(row["clip_loss"]) and res.bounds == []  # no temperature: no loss rows
    assert math.isnan(row["margin_threshold"]) and math.isnan(row["frac_margin_above_threshold"])


def test_pool_floor_golden_value_and_monte_carlo():
    # labels [0, 0, 1, 1], B = 2: the partner is the other same-label row w.p. 1/3.
    floor, rate = _pool_floor(np.array([2, 2]), 2)
    assert floor == pytest.approx(math.log(2) / 3) and rate == pytest.approx(1 / 3)
    assert _pool_floor(np.array([5]), 5) == pytest.approx((math.log(5), 1.0))
    sizes = np.array([1, 3, 7, 9])
    labels = np.repeat(np.arange(4), sizes)
    rng = np.random.default_rng(0)
    draws = np.stack([labels[rng.permutation(20)[:6]] for _ in range(20000)])
    n_i = (draws[:, :, None] == draws[:, None, :]).sum(-1)
    floor, rate = _pool_floor(sizes, 6)
    assert floor == pytest.approx(np.log(n_i).mean(), abs=0.01)
    assert rate == pytest.approx((n_i > 1).mean(), abs=0.01)


@pytest.mark.slow  # > 10 s; CI runs it (make test-slow)
def test_statements_hold_and_the_floor_is_below_the_loss():
    image, text, labels, centres = _clustered(600, 8, 6)
    res = analyze(image, text, labels=labels, class_text_emb=centres, temperature=0.1,
                  batch_sizes=(8, 64))
    assert isinstance(res, Analysis) and dict(res) == res.metrics
    assert res.bounds and all(r["holds"] for r in res.bounds), res.table()
    statements = {r["statement"].split(" [")[0].split(" ")[0] for r in res.bounds}
    assert statements == {"E1", "E2", "E3", "E4", "E5"}
    for row in res.batches:
        assert row["clip_loss"] >= row["floor"] - 3 * row["clip_loss_stderr"]
        assert row["margin_threshold"] == pytest.approx(0.1 * math.log(row["batch_size"] - 1))
    alpha = np.asarray(res.profile["alpha"])
    assert np.all(np.diff(alpha) >= 0) and alpha[-1] <= 1 - res.profile["beta"] + 1e-9
    assert res.arrays["confusion"].sum() == 600 and "E3 floor" in res.table()


def test_normalize_false_uses_the_rows_as_given():
    image, text, labels, _ = _clustered(300, 8, 5)
    scaled = analyze(3.0 * image, 3.0 * text, labels=labels)
    unit = analyze(image, text, labels=labels)
    raw = analyze(3.0 * image, 3.0 * text, labels=labels, normalize=False)
    assert scaled["margin_median"] == pytest.approx(unit["margin_median"], abs=1e-5)
    gap = np.linalg.norm(3.0 * image.mean(0) - 3.0 * text.mean(0))
    assert raw["modality_gap"] == pytest.approx(gap, rel=1e-5)
    bound = np.linalg.norm(3.0 * image, axis=1).max() * np.linalg.norm(3.0 * text, axis=1).max()
    assert raw["score_bound"] == pytest.approx(bound, rel=1e-5)
    assert raw["image_norm_mean"] == pytest.approx(
        np.linalg.norm(3.0 * image, axis=1).mean(), rel=1e-5)


# ------------------------------------------------------------------ bad input
def _good(n: int = 40, d: int = 6) -> dict:
    image, text, labels, centres = _clustered(n, d, 4)
    return {"image": image, "text": text, "labels": labels, "class_text": centres}


def _with(**changes) -> dict:
    arrays = _good()
    for k, v in changes.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    return arrays


def _nan_row(x: np.ndarray, row: int, value: float) -> np.ndarray:
    x = x.copy()
    x[row, 1] = value
    return x


BAD_NPZ = {
    "mismatched rows": (_with(text=_good()["text"][:-1]), ("text", "rows")),
    "mismatched dim": (_with(text=_good()["text"][:, :-1]), ("text", "dimension")),
    "nan row": (_with(image=_nan_row(_good()["image"], 5, np.nan)), ("image", "NaN", "row 5")),
    "inf row": (_with(text=_nan_row(_good()["text"], 7, np.inf)), ("text", "inf", "row 7")),
    "zero-norm row": (_with(text=np.where(np.arange(40)[:, None] == 3, 0.0, _good()["text"])),
                      ("text", "zero norm", "row 3")),
    "non-integer labels": (_with(labels=_good()["labels"] + 0.5), ("labels", "integer")),
    "string labels": (_with(labels=np.array(["a"] * 40)), ("labels", "dtype")),
    "labels of the wrong length": (_with(labels=_good()["labels"][:-2]), ("labels", "38")),
    "labels out of class range": (_with(labels=_good()["labels"] + 4), ("labels", "[0, 4)")),
    "missing text": (_with(text=None), ("text", "missing")),
    "missing image": (_with(image=None), ("image", "missing")),
    "integer image": (_with(image=np.ones((40, 6), np.int64)), ("image", "dtype")),
    "complex text": (_with(text=_good()["text"].astype(np.complex64)), ("text", "dtype")),
    "one-d image": (_with(image=np.ones(40, np.float32)), ("image", "2-D")),
    "class_text dim": (_with(class_text=np.ones((4, 5), np.float32)),
                       ("class_text", "dimension")),
    "class_text without labels": (_with(labels=None), ("labels", "missing")),
    "negative temperature": (_with(temperature=np.float32(-1.0)), ("temperature", "> 0")),
    "two temperatures": (_with(temperature=np.ones(2, np.float32)), ("temperature", "one")),
}


@pytest.mark.parametrize("case", BAD_NPZ, ids=list(BAD_NPZ))
def test_bad_npz_is_one_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    arrays, words = BAD_NPZ[case]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    _refused(path, words, tmp_path, capsys)


def _refused(path, words, tmp_path, capsys, *extra: str) -> None:
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["analyze", str(path), "--out", str(out), "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clipsim analyze: error: "), err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == before


BAD_FILES = {
    "wrong file type": ("emb.csv", b"1,2,3\n", ("emb.csv", ".npz or .parquet")),
    "corrupt npz": ("emb.npz", b"not a zip file", ("emb.npz", "not a readable")),
    "npy under an npz name": ("emb.npz", None, ("emb.npz", "not a .npz archive")),
    "corrupt parquet": ("emb.parquet", b"PAR1 nonsense", ("emb.parquet", "Parquet")),
    "missing file": ("absent.npz", False, ("absent.npz", "no such file")),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=list(BAD_FILES))
def test_bad_file_is_one_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    name, content, words = BAD_FILES[case]
    path = tmp_path / name
    if content is None:
        with open(path, "wb") as fh:
            np.save(fh, np.ones((3, 3)))
    elif content is not False:
        path.write_bytes(content)
    _refused(path, words, tmp_path, capsys)


def test_object_array_is_a_wrong_dtype(tmp_path, capsys):
    arrays = _good()
    path = tmp_path / "obj.npz"
    np.savez(path, **{**arrays, "labels": np.array([None] * 40, dtype=object)})
    _refused(path, ("labels", "dtype"), tmp_path, capsys)


def test_bad_parquet_columns(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    arrays = _good()
    rows = list(arrays["image"])
    rows[2] = rows[2][:3]
    path = tmp_path / "ragged.parquet"
    pd.DataFrame({"image": rows, "text": list(arrays["text"])}).to_parquet(path)
    _refused(path, ("image", "different lengths", "row 2"), tmp_path, capsys)
    path = tmp_path / "ints.parquet"
    pd.DataFrame({"image": [np.arange(6)] * 40, "text": list(arrays["text"])}).to_parquet(path)
    _refused(path, ("image", "floating"), tmp_path, capsys)
    path = tmp_path / "notext.parquet"
    pd.DataFrame({"image": list(arrays["image"])}).to_parquet(path)
    _refused(path, ("text", "missing"), tmp_path, capsys)


def test_bad_batch_size_is_refused(tmp_path, capsys):
    path = tmp_path / "ok.npz"
    np.savez(path, **_good())
    _refused(path, ("batch_sizes", "[2, 40]"), tmp_path, capsys, "--batch-sizes", "41")


def test_library_errors_name_the_array():
    image, text, labels, _ = _clustered(20, 4, 3)
    with pytest.raises(AnalysisInputError, match=r"^text: expected 20 rows"):
        analyze(image, text[:10])
    with pytest.raises(AnalysisInputError, match=r"^image: missing"):
        analyze(None, text)
    with pytest.raises(AnalysisInputError, match=r"^temperature"):
        analyze(image, text, temperature=float("nan"))
    with pytest.raises(AnalysisInputError, match=r"^gammas"):
        analyze(image, text, gammas=[-0.1, 0.5])
    with pytest.raises(AnalysisInputError, match=r"^top_r: 0 is invalid"):
        analyze(image, text, top_r=(0,))


# ------------------------------------------------------------------ memory
def test_a_child_reports_its_own_peak_not_its_parents():
    """The benchmark's child is started by a pytest worker that may hold gigabytes;
    its reported peak must be its own (``ru_maxrss`` is carried across exec)."""
    import subprocess
    import sys

    held = np.ones(256 * 2**20 // 8)  # the parent holds 256 MiB resident
    held[::512] = 2.0
    probe = "from benchmarks.common import peak_rss_bytes; print(peak_rss_bytes())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert 0 < int(out.stdout) < 200 * 2**20
    del held


@pytest.mark.slow  # a fresh process compiles every program: about 20 s
def test_memory_benchmark_runs_and_reports_the_peak():
    from benchmarks.analyze_memory import main as bench

    record = bench(["--n", "1500", "--d", "16", "--labels", "20", "--classes", "5",
                    "--batch-sizes", "64"])
    assert record["exit_code"] == 0, record
    assert 0 < record["baseline_rss_bytes"] < record["peak_rss_bytes"] < record["limit_bytes"]
    assert record["within_limit"]
