"""Every input format of docs/input.md, written by the tests, yields the same anchors."""
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import simmine
from simmine.anchors import load_sequences
from simmine.readers import detect_format

ROWS = [  # user, item, time: user b has ties at time 5 (file order decides), user c is too short for loo
    ("a", "x1", 3), ("b", "x2", 5), ("a", "x2", 1), ("b", "x3", 5), ("a", "x3", 2), ("c", "x1", 1),
    ("a", "x4", 4), ("b", "x1", 1), ("a", "x5", 9), ("b", "x5", 7), ("b", "x4", 8), ("a", "x6", 10),
]
# a by time: x2 x3 x1 x4 x5 x6 → T = x2 x3 x1 x4, target x4, history x2 x3 x1
# b by time: x1 x2 x3 x5 x4 → T = x1 x2 x3, target x3, history x1 x2
EXPECTED = {"user_id": ["a", "b"], "target": ["x4", "x3"], "history": [["x2", "x3", "x1"], ["x1", "x2"]]}


def _table(rows=ROWS):
    return pa.table({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                     "timestamp": [r[2] for r in rows]})


def _check(path, **kw):
    seqs = load_sequences(str(path), **kw)
    assert seqs.user_values.to_pylist() == EXPECTED["user_id"]
    assert seqs.target_values.to_pylist() == EXPECTED["target"]
    assert seqs.history_lists().to_pylist() == EXPECTED["history"]
    assert seqs.skipped == 1 and seqs.n_users == 3
    return seqs


def test_parquet(tmp_path):
    pq.write_table(_table(), tmp_path / "log.parquet")
    assert detect_format(str(tmp_path / "log.parquet")) == "parquet"
    _check(tmp_path / "log.parquet")


def test_arrow_and_feather(tmp_path):
    feather.write_feather(_table(), tmp_path / "log.feather")
    _check(tmp_path / "log.feather")
    with pa.OSFile(str(tmp_path / "log.arrows"), "wb") as sink, pa.ipc.new_stream(sink, _table().schema) as w:
        w.write_table(_table())
    assert detect_format(str(tmp_path / "log.arrows")) == "arrow"
    _check(tmp_path / "log.arrows")


@pytest.mark.parametrize("sep,ext", [(",", ".csv"), (";", ".csv"), ("\t", ".tsv"), ("\t", ".txt")])
def test_delimited(tmp_path, sep, ext):
    path = tmp_path / f"log{ext}"
    path.write_text("user_id{0}item_id{0}timestamp\n".format(sep) +
                    "".join(f"{u}{sep}{i}{sep}{t}\n" for u, i, t in ROWS))
    _check(path)


def test_renamed_columns_and_extra_columns(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("session,product,ts,price\n" + "".join(f"{u},{i},{t},1.5\n" for u, i, t in ROWS))
    _check(path, user_col="session", item_col="product", time_col="ts")


def test_inter(tmp_path):
    path = tmp_path / "log.inter"
    path.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n" +
                    "".join(f"{u}\t{i}\t4.0\t{t}\n" for u, i, t in ROWS))
    assert detect_format(str(path)) == "inter"
    _check(path)


def test_ml_dat(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("".join(f"{u}::{i}::5::{t}\n" for u, i, t in ROWS))
    assert detect_format(str(path)) == "ml-dat"
    _check(path)


def test_lines_keeps_file_order_and_integer_ids(tmp_path):
    path = tmp_path / "beauty.txt"
    path.write_text("1 10 11 12 13 14\n2 11 12\n3 12 13 14 15\n")
    assert detect_format(str(path)) == "lines"
    seqs = load_sequences(str(path))
    assert seqs.user_values.to_pylist() == [1, 3]
    assert seqs.target_values.to_pylist() == [12, 13]
    assert seqs.history_lists().to_pylist() == [[10, 11], [12]]
    assert seqs.skipped == 1


def test_no_time_column_keeps_file_order(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id\n" + "".join(f"u,{i}\n" for i in (5, 4, 3, 2, 1)))
    seqs = load_sequences(str(path), split="none")
    assert seqs.history_lists().to_pylist() == [[5, 4, 3, 2]] and seqs.target_values.to_pylist() == [1]


def test_integer_ids_stay_integers_in_output(tmp_path):
    t = pa.table({"user_id": [7, 7, 7, 9, 9, 9], "item_id": [3, 1, 2, 1, 2, 3], "timestamp": [0, 1, 2, 0, 1, 2]})
    pq.write_table(t, tmp_path / "log.parquet")
    out = simmine.build(input=str(tmp_path / "log.parquet"), out=str(tmp_path / "o"), k=1, split="none",
                        quiet=True)
    seqs = simmine.open(out).sequences()
    assert seqs.schema.field("seq_id").type == pa.uint32()
    assert seqs.column("user_id").to_pylist() == [7, 9] and seqs.column("target").to_pylist() == [2, 3]
    assert seqs.column("history").to_pylist() == [[3, 1], [1, 2]]
    assert seqs.column("bucket").null_count == 2


def test_max_len_truncates_to_last_items(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"u,{i},{i}\n" for i in range(10)))
    seqs = load_sequences(str(path), split="loo", max_len=3)
    assert seqs.history_lists().to_pylist() == [[4, 5, 6]] and seqs.target_values.to_pylist() == [7]
    seqs = load_sequences(str(path), split="loo", max_len=3, compare="full")
    assert seqs.history_lists().to_pylist() == [[5, 6, 7]]


def test_seq_ids_follow_first_appearance(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp\n" + "".join(f"{u},{i},{i}\n" for i in range(3) for u in "zya"))
    seqs = load_sequences(str(path), split="none")
    assert seqs.user_values.to_pylist() == ["z", "y", "a"]


def test_bucket_key_comes_from_target_row(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,city\nu,1,1,A\nu,2,2,A\nu,3,3,B\nv,1,1,B\nv,2,2,B\n")
    seqs = load_sequences(str(path), split="none", bucket_by=("city",))
    assert [seqs.bucket_labels[c] for c in seqs.bucket_codes] == ["B", "B"]


@pytest.mark.parametrize("core", [True, False], ids=["cpp", "numpy"])
def test_user_time_order_is_the_stable_sort_whether_or_not_the_log_is_already_sorted(core, monkeypatch):
    from simmine import _native
    from simmine.anchors import take

    if core and not _native.available():
        pytest.skip("C++ core not built")
    if not core:
        monkeypatch.setattr(_native, "core", None)
    rng = np.random.default_rng(0)
    for trial in range(300):
        n = int(rng.integers(0, 40))
        users = np.sort(rng.integers(0, 5, n)) if trial % 2 else rng.integers(0, 5, n)
        times = rng.integers(0, 4, n) if trial % 3 else np.sort(rng.integers(0, 4, n))
        if trial % 5 == 0:
            times = np.zeros(n, dtype=np.int64)  # all tied: file order
        if trial % 7 == 0:
            times = times + rng.random(n)  # float timestamps
        every = np.arange(n)
        assert np.array_equal(take(_native.user_time_order(users, times, 5), every), np.lexsort((times, users)))
        assert np.array_equal(take(_native.user_time_order(users, None, 5), every), np.argsort(users, kind="stable"))


def _slow_lines(path):
    """The lines format read line by line in Python: the reader's oracle (tokens as bytes)."""
    import re

    canonical = re.compile(rb"-?[1-9][0-9]{0,17}|0")
    users, items = [], []
    with open(path, "rb") as f:
        for line in f:
            parts = line.split()
            if parts:
                users += [parts[0]] * (len(parts) - 1)
                items += parts[1:]

    def values(tokens):
        if all(canonical.fullmatch(t) for t in tokens):
            return [int(t) for t in tokens]
        return [t.decode("utf-8") for t in tokens]

    return values(users), values(items)


@pytest.mark.parametrize("seed", range(6))
def test_lines_reader_equals_a_line_by_line_parse(tmp_path, seed):
    from simmine.readers.lines import read_lines

    rng = np.random.default_rng(seed)
    words = ["0", "7", "-3", "12", "007", "-0", "1" * 18, "1" * 19, "ä", "b:c", "x"]
    pool = words[:4] if seed % 2 else words
    lines = []
    for u in range(30):
        toks = [str(u) if seed % 3 else f"u{u}"] + [str(rng.choice(pool)) for _ in range(int(rng.integers(1, 6)))]
        sep = rng.choice([" ", "\t", "  ", " \t "])
        lines.append(sep.join(toks) + rng.choice(["", " ", "\r"]))
        if rng.random() < 0.2:
            lines.append(rng.choice(["", "   ", "\t"]))
    path = tmp_path / "log.txt"
    path.write_text("\n".join(lines) + rng.choice(["", "\n"]), encoding="utf-8")
    table, _ = read_lines(str(path))
    users, items = _slow_lines(str(path))
    assert table.column("user_id").to_pylist() == users and table.column("item_id").to_pylist() == items


@pytest.mark.parametrize("content,message", [
    (b"u1 1 2\nu2\nu3 \xff\xfe\n", "line 2: too few fields"),
    (b"u1 1 2\nu2 \xff\xfe\nu3\n", "line 2: not UTF-8 text"),
    (b"u1 1 2\nu2 3\nu3\n\xff 1\n", "line 3: too few fields"),
    (b"  \n\t\n", "the log is empty"),
])
def test_lines_reader_errors_name_the_first_bad_line(tmp_path, content, message):
    from simmine.errors import InputError
    from simmine.readers.lines import read_lines

    path = tmp_path / "log.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_lines(str(path))


@pytest.mark.parametrize("seed", range(4))
def test_lines_reader_core_and_numpy_agree(tmp_path, seed):
    from simmine import _native
    from simmine.readers.lines import scan_core, scan_numpy

    if not _native.available():
        pytest.skip("the C++ core is not built")
    rng = np.random.default_rng(seed)
    words = ["0", "-3", "12", "x", "ä"] if seed % 2 else ["0", "-3", "12", "99"]
    text = "\n".join(" ".join([f"u{i}" if seed > 1 else str(i)] + [str(rng.choice(words)) for _ in range(
        int(rng.integers(0, 5)))]) for i in range(50))
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    a, b = scan_core(data, _native.core), scan_numpy(data)
    assert a[0].to_pylist() == b[0].to_pylist() and a[1].to_pylist() == b[1].to_pylist()
    assert a[2:] == b[2:]


@pytest.mark.parametrize("ids", ["dense", "sparse", "text"])
def test_encode_with_equals_arrow_index_in(ids):
    """Item codes through the lookup table (dense integer ids) or the hash path equal Arrow's index_in."""
    import pyarrow.compute as pc

    from simmine.anchors import encode_with

    rng = np.random.default_rng(3)
    values = {"dense": rng.integers(5, 900, size=5000), "sparse": rng.integers(0, 10**12, size=50) * 7,
              "text": np.array([f"i{v}" for v in rng.integers(0, 300, size=2000)])}[ids]
    values = pa.chunked_array([pa.array(values[:1000]), pa.array(values[1000:])])
    dictionary = pc.unique(values.combine_chunks())
    dictionary = dictionary.take(pc.sort_indices(dictionary))
    want = pc.index_in(values, value_set=dictionary).to_numpy()
    assert np.array_equal(encode_with(values, dictionary), want)


@pytest.mark.parametrize("ids", ["dense", "negative", "int8", "sparse", "text", "one"])
def test_encode_sorted_equals_arrow_unique_and_index_in(ids):
    """Sorted codes through the presence table (integers over a short span) or the hash path equal Arrow's
    sorted unique values and index_in."""
    import pyarrow.compute as pc

    from simmine.anchors import encode_sorted

    rng = np.random.default_rng(4)
    values = {"dense": rng.integers(5, 900, size=5000), "negative": rng.integers(-300, 40, size=3000),
              "int8": rng.integers(-100, 101, size=700).astype(np.int8),
              "sparse": rng.integers(0, 10**12, size=50) * 7, "one": np.array([11]),
              "text": np.array([f"i{v}" for v in rng.integers(0, 300, size=2000)])}[ids]
    values = pa.chunked_array([pa.array(values[:len(values) // 2]), pa.array(values[len(values) // 2:])])
    dictionary = pc.unique(values.combine_chunks())
    dictionary = dictionary.take(pc.sort_indices(dictionary))
    codes, got = encode_sorted(values)
    assert got.equals(dictionary) and codes.dtype == np.int32
    assert np.array_equal(codes, pc.index_in(values, value_set=dictionary).to_numpy())


@pytest.mark.parametrize("layout", ["user after user", "interleaved", "text"])
def test_first_appearance_codes_equal_arrow_dictionary_encode(layout):
    """User codes through the runs (integer ids, one run per user) or the hash path equal Arrow's
    dictionary_encode: codes and dictionary in order of first appearance."""
    import pyarrow.compute as pc

    from simmine.anchors import first_appearance_codes

    rng = np.random.default_rng(5)
    users = np.repeat(rng.permutation(400) * 3, rng.integers(1, 6, size=400))
    if layout == "interleaved":
        users = rng.permutation(users)
    values = pa.array(users) if layout != "text" else pa.array([f"u{u}" for u in users])
    values = pa.chunked_array([values[:100], values[100:]])
    enc = pc.dictionary_encode(values.combine_chunks())
    codes, dictionary = first_appearance_codes(values)
    assert dictionary.equals(enc.dictionary)
    assert np.array_equal(codes, enc.indices.to_numpy().astype(np.int64))


@pytest.mark.parametrize("order", ["interleaved", "grouped"])
@pytest.mark.parametrize("span", [7, 300, 10 ** 12])
def test_every_user_numbering_route_equals_dictionary_encode(order, span):
    """Every route (table of the span, runs, hash) numbers users as Arrow's dictionary_encode does, and the
    table kernel's NumPy route equals the core's."""
    import pyarrow.compute as pc

    from simmine import _native
    from simmine.anchors import first_appearance_codes

    rng = np.random.default_rng(span % 1000)
    for trial in range(20):
        u = rng.integers(-40, -40 + span, size=int(rng.integers(2, 2000)))
        if order == "grouped":
            u = np.sort(u)
        for typ in (pa.int64(), pa.int32()) if span < 2 ** 31 else (pa.int64(),):
            arr = pa.array(u, type=typ)
            codes, dictionary = first_appearance_codes(arr)
            enc = pc.dictionary_encode(arr)
            assert np.array_equal(codes, enc.indices.to_numpy()) and dictionary.equals(enc.dictionary)
        if span < 2 ** 31:
            fast = _native.first_appearance(u, int(u.min()), int(u.max() - u.min() + 1))
            core, _native.core = _native.core, None
            try:
                slow = _native.first_appearance(u, int(u.min()), int(u.max() - u.min() + 1))
            finally:
                _native.core = core
            assert all(np.array_equal(a, b) for a, b in zip(fast, slow))
