"""simmine items (docs/items.md): every paper's graph or neighbour table against a slow implementation of its
definition, every option against the docs' definition, the tensors against the Arrow tables, bad input."""
import math
import os
from collections import defaultdict

import numpy as np
import pytest

import simmine
from conftest import write_parquet
from simmine.cli import main


def random_log(rng, users=40, items=25, longest=14):
    rows, t = [], 0
    for u in range(users):
        for _ in range(int(rng.integers(1, longest))):
            rows.append((f"u{u}", int(rng.integers(1, items + 1)), t))
            t += 1
    return rows


def training(rows, split="loo"):
    """Per user (first appearance order): T as item ids, time-sorted (the times are already increasing)."""
    seqs = {}
    for u, i, _ in rows:
        seqs.setdefault(u, []).append(i)
    return [s[:-2] if split == "loo" else s for s in seqs.values()]


def built(tmp_path, rows, name="o", **kw):
    path = write_parquet(tmp_path / "log.parquet", rows)
    return simmine.open_items(simmine.items(input=path, out=str(tmp_path / name), quiet=True, **kw))


def as_dict(graph):
    src, dst, w = graph.edges()
    return {(int(a), int(b)): float(x) for a, b, x in zip(src, dst, w)}


def close(got: dict, want: dict):
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_mvcrec_graph(tmp_path):
    """MVCrec: distance 1..3 both ways, self-loops added, binarised, D^-1/2 (A + I) D^-1/2."""
    rows = random_log(np.random.default_rng(0))
    a = set()
    for s in training(rows):
        for d in (1, 2, 3):
            for j in range(len(s) - d):
                a.add((s[j], s[j + d]))
                a.add((s[j + d], s[j]))
    items = sorted({i for _, i, _ in rows})
    a |= {(i, i) for i in items}
    deg = defaultdict(float)
    for i, _ in a:
        deg[i] += 1.0
    want = {(i, j): 1.0 / math.sqrt(deg[i]) / math.sqrt(deg[j]) for i, j in a}
    close(as_dict(built(tmp_path, rows, window=3, weight="binary", self_loops=True, normalize="sym")), want)


def test_gcl4sr_graph(tmp_path):
    """GCL4SR's WITG: distance 1..3, Σ 1/distance both ways, then w·(1/deg_row + 1/deg_col) in edge counts."""
    rows = random_log(np.random.default_rng(1), items=12)  # small vocabulary: repeats and self pairs
    adj = defaultdict(float)
    for s in training(rows):
        for k in (1, 2, 3):
            for j in range(len(s) - k):
                adj[(s[j], s[j + k])] += 1 / k
                adj[(s[j + k], s[j])] += 1 / k
    out_deg, in_deg = defaultdict(int), defaultdict(int)
    for i, j in adj:
        out_deg[i] += 1
        in_deg[j] += 1
    want = {(i, j): w * (1 / out_deg[i] + 1 / in_deg[j]) for (i, j), w in adj.items()}
    close(as_dict(built(tmp_path, rows, window=3, weight="inverse-distance", normalize="gcl4sr")), want)


@pytest.mark.parametrize("iuf", [False, True])
def test_coserec_itemcf_top1(tmp_path, iuf):
    """CoSeRec: ItemCF (or ItemCF-IUF) over training sequences as sets, c_ij / √(N_i·N_j), top-1."""
    rows = random_log(np.random.default_rng(2))
    c, n = defaultdict(float), defaultdict(int)
    for s in training(rows):
        items = set(s)
        for i in items:
            n[i] += 1
            for j in items:
                if i != j:
                    c[(i, j)] += 1 / math.log(1 + len(items)) if iuf else 1
    sim = {(i, j): v / math.sqrt(n[i] * n[j]) for (i, j), v in c.items()}
    g = built(tmp_path, rows, window=0, count="set", weight="iuf" if iuf else "count", normalize="cosine", k=1)
    for i in n:
        mine = [(j, v) for (a, j), v in sim.items() if a == i]
        if not mine:
            assert len(g.neighbors(i)[0]) == 0
            continue
        best = max(v for _, v in mine)
        got, score = g.neighbors(i)
        assert len(got) == 1 and score[0] == pytest.approx(best, rel=1e-6)
        assert int(got[0]) == min(j for j, v in mine if np.float32(v) == np.float32(best))  # ties: lowest code


@pytest.mark.parametrize("seed, k", [(3, 5), (7, 1), (8, 40)])
def test_itemcf_iuf_by_the_kernel_equals_the_assembled_graph(tmp_path, seed, k):
    """ItemCF-IUF through the co-count kernel (cpp) and through every pair assembled (python): the same
    bytes, weights summed in the same order."""
    from simmine.backends import available_backends

    if "cpp" not in available_backends():
        pytest.skip("C++ core not built")
    rows = random_log(np.random.default_rng(seed), users=60)
    flags = dict(window=0, count="set", weight="iuf", normalize="cosine", k=k)
    graph = built(tmp_path, rows, "g", backend="python", **flags)
    kernel = built(tmp_path, rows, "k", backend="cpp", **flags)
    for a, b in zip(graph.csr(), kernel.csr()):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("seed, k", [(3, 5), (7, 1), (8, 40)])
def test_itemcf_by_kernels_equals_graph(tmp_path, seed, k):
    """--metric cosine (over user sets) and the co-occurrence graph with --window 0 --count set --normalize
    cosine agree bit for bit. With a co-count kernel (cpp) the graph's top k takes it too; the python
    backend assembles every pair, normalises and ranks them, so it is the oracle here."""
    rows = random_log(np.random.default_rng(seed), users=60)
    graph = built(tmp_path, rows, "g", window=0, count="set", normalize="cosine", k=k, backend="python")
    from simmine.backends import available_backends

    for backend in [b for b in ("python", "cpp") if b in available_backends()]:
        kernel = built(tmp_path, rows, f"k{backend}", metric="cosine", k=k, backend=backend)
        graph_here = built(tmp_path, rows, f"g{backend}", window=0, count="set", normalize="cosine", k=k,
                           backend=backend, self_loops=True)
        for a, b, c in zip(graph.csr(), kernel.csr(), graph_here.csr()):
            assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.parametrize("backend", ["python", "numba", "cpp"])
@pytest.mark.parametrize("metric", ["jaccard", "cosine"])
@pytest.mark.parametrize("shape", ["dense", "sparse"])
def test_item_neighbours_of_user_sets(tmp_path, backend, metric, shape):
    """Each item's top 4 by Jaccard or cosine of its user set against a set-by-set oracle, on every backend:
    dense rows (few items, each item's users hold most of them) and sparse ones (many items, short users)
    take different routes through the C++ co-count kernel."""
    from simmine.backends import available_backends

    if backend not in available_backends():
        pytest.skip(f"backend {backend} not available")
    rng = np.random.default_rng(4)
    rows = random_log(rng) if shape == "dense" else random_log(rng, users=80, items=400, longest=6)
    users = defaultdict(set)
    for u, s in enumerate(training(rows)):
        for i in s:
            users[i].add(u)

    def score(i, j):
        inter = len(users[i] & users[j])
        if metric == "jaccard":
            return np.float32(inter / len(users[i] | users[j]))
        return np.float32(inter / (math.sqrt(len(users[i])) * math.sqrt(len(users[j]))))

    g = built(tmp_path, rows, metric=metric, k=4, backend=backend)
    for i in users:
        scored = sorted((-score(i, j), j) for j in users if j != i and users[i] & users[j])[:4]
        got, got_score = g.neighbors(i)
        assert got.tolist() == [j for _, j in scored]
        assert got_score.tolist() == [-s for s, _ in scored]


EMBED_SCREENS = {"AMX bfloat16": "amx", "AVX-512 BF16": "avx512-bf16"}
EMBED_ROUTES = ["float32 GEMM"] + [f"{name}{tail}" for name in EMBED_SCREENS for tail in ("", ", rows overflowing")]


@pytest.fixture(params=EMBED_ROUTES)
def embed_route(request, monkeypatch):
    """Each route of embedding_neighbours: the float32 GEMM (with few candidates, so its certificate and its
    whole-row fallback both run), each bfloat16 screen where the CPU has it, and each screen with a tiny
    candidate limit, so rows leave it for the GEMM route."""
    import simmine.graphs.embedding as items_mod
    from simmine import _native as native
    from simmine.backends import cpp

    screen = EMBED_SCREENS.get(request.param.split(",")[0], "")
    if screen and not (cpp.available() and screen in native.core.embed_screens()):
        pytest.skip(f"this CPU does not run the {screen} screen")
    if cpp.available():
        native.core.set_embed_screen(screen)
    monkeypatch.setattr(items_mod, "EMBED_EXTRA", 2)
    if request.param.endswith("overflowing"):
        monkeypatch.setattr(items_mod, "EMBED_MOST", 8)
    yield request.param
    if cpp.available():
        native.core.set_embed_screen("auto")


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_sra_cl_embedding_neighbours(tmp_path, similarity, embed_route):
    """SRA-CL: each item's top 10 by cosine of given vectors, itself excluded; exact, ties by code."""
    rows = random_log(np.random.default_rng(5), items=60)
    n = len({i for _, i, _ in rows})
    v = np.random.default_rng(6).integers(-2, 3, size=(n, 5)).astype(np.float64)  # integer vectors: many ties
    v[3] = 0.0
    emb = tmp_path / "e.npy"
    np.save(emb, np.vstack([np.zeros((1, 5)), v]))  # with a padding row first
    g = built(tmp_path, rows, embeddings=str(emb), k=10, similarity=similarity)
    norms = np.linalg.norm(v, axis=1)
    for i in range(n):
        scores = []
        for j in range(n):
            if j == i:
                continue
            s = float(v[i] @ v[j])
            if similarity == "cosine":
                s = 0.0 if norms[i] == 0 or norms[j] == 0 else s / norms[i] / norms[j]
            scores.append((-np.float32(s), j + 1))
        want = sorted(scores)[:10]
        got, score = g.neighbors(i + 1, codes=True)
        assert got.tolist() == [j for _, j in want], i
        assert score.tolist() == [-s for s, _ in want]


def slow_graph(rows, window, count, directed, weight, self_loops, normalize):
    """The docs' definition of a co-occurrence graph, pair by pair."""
    seqs = training(rows)
    items = sorted({i for _, i, _ in rows})
    per_user = []
    for s in seqs:
        occ = defaultdict(list)
        for p in range(len(s)):
            for q in range(p + 1, len(s)):
                if window and q - p > window:
                    continue
                d = q - p
                w = {"count": 1.0, "binary": 1.0, "inverse-distance": 1 / d,
                     "iuf": 1 / math.log(1 + len(set(s)))}[weight]
                occ[(s[p], s[q])].append(w)
                if not directed:
                    occ[(s[q], s[p])].append(w)
        per_user.append(occ)
    a = defaultdict(float)
    for occ in per_user:
        for key, ws in occ.items():
            a[key] += max(ws) if count == "set" else sum(ws)
    if self_loops:
        for i in items:
            a[(i, i)] += 1.0
    if weight == "binary":
        a = {key: 1.0 for key in a}
    if normalize == "row":
        row = defaultdict(float)
        for (i, _), w in a.items():
            row[i] += w
        a = {(i, j): w / row[i] for (i, j), w in a.items()}
    elif normalize == "cosine":
        n = defaultdict(int)
        for s in seqs:
            for i in set(s):
                n[i] += 1
        a = {(i, j): w / (math.sqrt(n[i]) * math.sqrt(n[j])) for (i, j), w in a.items() if i != j}
    return dict(a)


@pytest.mark.parametrize("options", [
    dict(window=1, count="multiset", directed=True, weight="count", self_loops=False, normalize="none"),
    dict(window=2, count="set", directed=False, weight="inverse-distance", self_loops=True, normalize="row"),
    dict(window=0, count="multiset", directed=False, weight="iuf", self_loops=False, normalize="cosine"),
    dict(window=4, count="set", directed=True, weight="binary", self_loops=False, normalize="none"),
], ids=str)
def test_graph_options_match_the_definition(tmp_path, options):
    rows = random_log(np.random.default_rng(7), items=10)
    close(as_dict(built(tmp_path, rows, **options)), slow_graph(rows, **options))


def test_top_k_and_tie_order(tmp_path):
    rows = random_log(np.random.default_rng(8), items=15)
    full = built(tmp_path, rows, "full", window=2)
    top = built(tmp_path, rows, "top", window=2, k=3)
    off, nbr, w = full.csr()
    for code in range(1, full.n_items + 1):
        row = sorted(zip(-w[off[code]:off[code + 1]], nbr[off[code]:off[code + 1]]))
        assert [int(j) for _, j in row] == nbr[off[code]:off[code + 1]].tolist()  # score desc, code asc
        t_off, t_nbr, _ = top.csr()
        assert t_nbr[t_off[code]:t_off[code + 1]].tolist() == [int(j) for _, j in row[:3]]


def test_torch_views_equal_the_tables(tmp_path):
    torch = pytest.importorskip("torch")
    from simmine.torch import edge_index, graph_tensor, neighbor_tensors

    rows = random_log(np.random.default_rng(9))
    g = built(tmp_path, rows, window=3, weight="binary", self_loops=True, normalize="sym")
    src, dst, w = g.edges(codes=True)
    index, weight = edge_index(g)
    assert index.tolist() == [src.tolist(), dst.tolist()] and torch.equal(weight, torch.from_numpy(w))
    dense = graph_tensor(g).to_dense()
    assert dense.shape == (g.n_items + 1, g.n_items + 1)
    assert torch.equal(dense[torch.from_numpy(src), torch.from_numpy(dst)], torch.from_numpy(w))
    assert float(dense.sum()) == pytest.approx(float(w.sum()), rel=1e-6)
    assert torch.equal(graph_tensor(g, "csr").to_dense(), dense)
    table, scores = neighbor_tensors(g, 4)
    for code in (1, 5, g.n_items):
        nbr, s = g.neighbors(code, codes=True)
        assert table[code, :len(nbr[:4])].tolist() == nbr[:4].tolist() and bool((table[code, len(nbr[:4]):] == 0).all())
    assert bool((table[0] == 0).all())
    ids = g.items()
    assert ids[0].as_py() is None and g.codes([ids[7].as_py(), "nope"]).tolist() == [7, 0]


def test_substitution_and_insertion(tmp_path):
    torch = pytest.importorskip("torch")
    from simmine.torch import ItemSubstitution

    table = torch.tensor([[0, 0, 0], [2, 3, 0], [1, 0, 0], [0, 0, 0]])  # item 3 has no neighbours
    aug = ItemSubstitution(table, p=0.3, seed=1)
    batch = torch.tensor([[0, 1, 2, 3]] * 4000)
    rows = torch.arange(4000)
    out = aug(batch, rows, epoch=2)
    assert torch.equal(out[:, 0], batch[:, 0]) and torch.equal(out[:, 3], batch[:, 3])  # padding, no neighbours
    changed = out[:, 1] != 1
    assert abs(float(changed.double().mean()) - 0.3) < 0.03
    picks = out[changed, 1]
    assert set(picks.tolist()) == {2, 3} and abs(float((picks == 2).double().mean()) - 0.5) < 0.05
    assert torch.equal(aug(batch[100:200], rows[100:200], epoch=2), out[100:200])  # per row, not per batch
    assert not torch.equal(aug(batch, rows, epoch=3), out)
    ins = ItemSubstitution(table, p=1.0, seed=0, mode="insert")
    left = ins(torch.tensor([[0, 0, 0, 1, 3]]), torch.tensor([0]))
    assert left[0].tolist()[-3:] == [1, int(left[0, -2]), 3] and int(left[0, -2]) in (2, 3)
    right = ins(torch.tensor([[1, 2, 3, 0, 0]]), torch.tensor([0]))
    assert right[0].tolist()[-1] == 3 and right[0].tolist().count(0) == 0  # the oldest item dropped past L


@pytest.mark.parametrize("flags,message", [
    (["--metric", "cosine"], "give --k"),
    (["--normalize", "dense"], "unknown --normalize 'dense'"),
    (["--window", "-1"], "--window must be a non-negative integer"),
    (["--embeddings", "missing.npy", "--k", "3"], "--embeddings file not found"),
])
def test_bad_items_flags(tmp_path, capsys, flags, message):
    rows = random_log(np.random.default_rng(10))
    path = write_parquet(tmp_path / "log.parquet", rows)
    assert main(["items", "--input", path, "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not os.path.exists(tmp_path / "o")


def test_bad_embeddings_shape(tmp_path, capsys):
    rows = random_log(np.random.default_rng(11))
    path = write_parquet(tmp_path / "log.parquet", rows)
    np.save(tmp_path / "e.npy", np.ones((3, 4)))
    assert main(["items", "--input", path, "--out", str(tmp_path / "o"), "--embeddings", str(tmp_path / "e.npy"),
                 "--k", "2"]) == 2
    assert "3 rows, but the log has" in capsys.readouterr().err and not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("padding", [0, 1])
def test_non_finite_embedding_row_is_named_as_in_the_file(tmp_path, capsys, padding):
    rows = random_log(np.random.default_rng(11))
    path = write_parquet(tmp_path / "log.parquet", rows)
    n = len({i for _, i, _ in rows})
    v = np.ones((n + padding, 4))
    v[2, 1] = np.nan  # file row 2
    np.save(tmp_path / "e.npy", v)
    assert main(["items", "--input", path, "--out", str(tmp_path / "o"), "--embeddings", str(tmp_path / "e.npy"),
                 "--k", "2"]) == 2
    assert "e.npy: row 2 has a NaN or infinite value" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o")


def test_items_cli_like_inspect_verify(tmp_path, capsys):
    rows = random_log(np.random.default_rng(12))
    path = write_parquet(tmp_path / "log.parquet", rows)
    out = tmp_path / "o"
    assert main(["items", "--input", path, "--out", str(out), "--window", "2", "--normalize", "row", "--k", "4"]) == 0
    assert "edges" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(["items", "--like", str(out), "--out", str(again), "--quiet"]) == 0
    assert open(out / "edges.arrow", "rb").read() == open(again / "edges.arrow", "rb").read()
    assert main(["inspect", str(out)]) == 0 and "co-occurrence within 2 positions" in capsys.readouterr().out
    assert main(["verify", str(out)]) == 0
    data = bytearray((out / "edges.arrow").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "edges.arrow").write_bytes(bytes(data))
    assert main(["verify", str(out)]) == 1


@pytest.mark.parametrize("kind", ["metric", "embeddings"])
def test_verify_neighbour_outputs(tmp_path, kind):
    from simmine.report import verify

    rows = random_log(np.random.default_rng(13), items=30)
    n = len({i for _, i, _ in rows})
    kw = {"metric": "jaccard", "k": 3}
    if kind == "embeddings":
        np.save(tmp_path / "e.npy", np.random.default_rng(1).standard_normal((n, 8)))
        kw = {"embeddings": str(tmp_path / "e.npy"), "k": 3}
    g = built(tmp_path, rows, **kw)
    assert verify(g.path, sample=10) == []
    if kind == "embeddings":
        np.save(tmp_path / "e.npy", np.zeros((n, 8)))
        assert "missing or changed" in verify(g.path)[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_continuous_embedding_neighbours_equal_float64_scoring(dtype, embed_route):
    """Clustered real-valued vectors (many near-ties within bfloat16's error) in float32 and float64: each
    item's top 5 equals scoring every other item in float64, for every route."""
    from simmine.graphs.embedding import embedding_neighbours

    rng = np.random.default_rng(3)
    centres = rng.standard_normal((6, 48))
    v = (centres[rng.integers(0, 6, 400)] + 0.01 * rng.standard_normal((400, 48))).astype(dtype)
    v[7] = v[8]  # an exact duplicate
    if embed_route.endswith("overflowing"):  # some rows leave the screen, not all
        from simmine import _native as native

        probe = np.vstack([rng.standard_normal((200, 48)), v[:200]])  # scattered rows, then clustered ones
        unit = (probe / np.linalg.norm(probe, axis=1, keepdims=True)).astype(np.float32)
        overflow = native.core.embed_candidates(unit, np.full(400, 1e-3), 5, 8)[2]
        assert overflow[200:].all() and not overflow[:200].all()
    for similarity in ("cosine", "dot"):
        edges = embedding_neighbours(v, 5, similarity)
        x = v.astype(np.float64)
        norms = np.sqrt((x * x).sum(axis=1))
        for i in range(0, 400, 7):
            s = x @ x[i] / (norms * norms[i] if similarity == "cosine" else 1.0)
            s = s.astype(np.float32)
            s[i] = -np.inf
            want = np.lexsort((np.arange(400), -s.astype(np.float64)))[:5]
            got = edges.dst[edges.src == i]
            assert got.tolist() == want.tolist(), (similarity, i)
            assert np.allclose(edges.weight[edges.src == i], s[want], rtol=1e-6, atol=1e-7)


def _bf16(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 (round to nearest even) → float64, the screens' rounding of their inputs."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


@pytest.mark.parametrize("screen", ["amx", "avx512-bf16"])
def test_embed_screen_lists_the_window_of_each_rows_kth(screen):
    """Each screen's candidates against bfloat16 scores summed in float64: every column within the window of
    the row's k-th score is listed and none far below it (odd dims, rows not filling a block, duplicates and a
    zero row, a thread's screens merged with the other's)."""
    from simmine import _native as native
    from simmine.backends import cpp

    if not (cpp.available() and screen in native.core.embed_screens()):
        pytest.skip(f"this CPU does not run the {screen} screen")
    rng = np.random.default_rng(8)
    x = rng.standard_normal((333, 37)).astype(np.float32)
    x[10] = x[11]
    x[20] = 0.0
    window = rng.uniform(0.0, 2.0, size=333)
    try:
        native.core.set_embed_screen(screen)
        ptr, cols, overflow = native.core.embed_candidates(x, window, 5, 10_000)
    finally:
        native.core.set_embed_screen("auto")
    assert not overflow.any()
    t = _bf16(x)
    scores = t @ t.T
    slack = 1e-4 * np.abs(t).sum(axis=1).max() ** 2 / 37  # float32 sums of 37 products, well inside
    for r in range(333):
        s = np.delete(scores[r], r)
        others = np.delete(np.arange(333), r)
        kth = np.sort(s)[-5]
        got = set(cols[ptr[r]:ptr[r + 1]].tolist())
        assert r not in got
        assert set(others[s >= kth - window[r] + slack].tolist()) <= got, r
        assert got <= set(others[s >= kth - window[r] - slack].tolist()), r


@pytest.mark.skipif(not simmine.backends.cpp.available(), reason="the C++ core is not built")
def test_pair_dots_equal_float64_dots():
    from simmine import _native as native

    rng = np.random.default_rng(1)
    v = rng.integers(-3, 4, size=(40, 19)).astype(np.float64)  # integer vectors: every summation order is exact
    rows, cols = rng.integers(0, 40, size=37), rng.integers(0, 40, size=37)
    want = np.einsum("xd,xd->x", v[rows], v[cols])
    assert np.array_equal(native.core.pair_dots(v, rows, cols), want)
    assert np.array_equal(native.core.pair_dots(v.astype(np.float32), rows, cols), want)
    w = rng.standard_normal((40, 19))  # float32 rows give the bits of the same rows as float64
    assert np.array_equal(native.core.pair_dots(w.astype(np.float32), rows, cols),
                          native.core.pair_dots(w.astype(np.float32).astype(np.float64), rows, cols))
    with pytest.raises(ValueError, match="out of range"):
        native.core.pair_dots(v, rows, cols + 40)


def test_co_count_kernel_with_wide_item_codes():
    """Item codes past 65,535 take the kernel's int32 lists: the same neighbours as the 16-bit ones."""
    from simmine.backends import cpp

    if not cpp.available():
        pytest.skip("C++ core not built")
    rng = np.random.default_rng(9)
    lengths = rng.integers(1, 12, 50)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
    codes = rng.integers(0, 30, indptr[-1]).astype(np.int32)
    for cosine in (False, True):
        narrow = cpp.item_topk(indptr, codes, 30, 5, cosine)
        offsets, cols, scores = cpp.item_topk(indptr, codes, 70_000, 5, cosine)  # 69,970 items without users
        assert np.array_equal(offsets[:31], narrow[0]) and offsets[-1] == narrow[0][-1]
        assert np.array_equal(cols, narrow[1]) and np.array_equal(scores, narrow[2])
