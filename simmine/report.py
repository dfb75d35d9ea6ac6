"""``inspect`` and ``verify``: read a finished build, summarise it, re-check it."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

from .errors import InputError
from .io import check_files, map_table, read_manifest, sha256_file, shard_files


def _shard_tables(out: str, kind: str) -> list:
    return [map_table(os.path.join(out, sh[kind])) for sh in shard_files(read_manifest(out))]


def _list_lengths(tables: list) -> np.ndarray:
    """Neighbours per anchor, from the list offsets of each record batch (the values are never read:
    combining chunks would copy them, 3 GB for a million anchors' strong positives)."""
    parts = [np.diff(chunk.offsets.to_numpy()) for t in tables for chunk in t.column("neighbors").chunks]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _strong_counts(out: str) -> np.ndarray:
    """|strong(i)| per anchor, from the groups (or, in format 1, the list offsets) without building lists."""
    from .positives import Positives

    return Positives(out).strong_counts()


def _weak_arrays(out: str):
    tables = _shard_tables(out, "weak")
    counts = _list_lengths(tables)
    scores = np.concatenate([t.column("scores").combine_chunks().values.to_numpy() for t in tables])
    return counts, scores


def summary_lines(out: str) -> list:
    """A human summary of a build or an items output (what ``simmine inspect`` prints)."""
    m = read_manifest(out)
    if m.get("kind") == "items":
        from .graphs import items_summary

        return items_summary(out)
    p = m["params"]
    counts, scores = _weak_arrays(out)
    s_counts = _strong_counts(out)
    inp = m["input"]
    source = "built-in demo log" if inp.get("demo") else f"{inp['path']} ({inp['bytes']:,} bytes, {p['format']})"
    if inp.get("chain"):  # an updated build: its logs, oldest first
        source = " + ".join(e["path"] for e in inp["chain"]) + f" ({inp['bytes']:,} bytes, {p['format']}; updated)"
    if p["selection"] == "k":
        how = f"k={p['k']}"
    elif p["selection"] == "min_sim":
        how = f"min-sim={p['min_sim']}"
    else:
        how = f"alpha={p['alpha']} ({p['alpha_scope']} scope)"
    if p["max_per_anchor"]:
        how += f", max-per-anchor={p['max_per_anchor']}"
    metric = p["metric"] + (f" (n={p['ngram_n']})" if p.get("ngram_n") else "")
    lines = [
        f"simmine build: {out}",
        f"  input      {source}",
        f"  anchors    {m['n_anchors']:,} of {m['n_users']:,} users ({m['skipped']:,} skipped), one per "
        f"{p.get('anchors', 'user')}"
        + (" (a user's own never paired)" if p.get("same_user") == "exclude" and p.get("anchors") == "prefix" else "")
        + f", {m['n_buckets']:,} bucket(s){' by ' + ','.join(p['bucket_by']) if p['bucket_by'] else ''}",
        f"  metric     {metric} on {p['compare']}, split {p['split']}, max-len {p['max_len']}",
        f"  selection  {how}",
        f"  run        method {m['method']}, backend {m['backend']}, engine {m['engine']}"
        + (f", streamed within --memory-gb {p['memory_gb']} ({m['streamed']['partitions']} user partitions, "
           f"{m['streamed']['groups']} bucket groups)" if m.get("streamed") else ""),
        f"  pairs      {m['pairs']['compared']:,} compared",
        f"  weak       {int(counts.sum()):,} kept; per anchor mean {counts.mean():.2f}, max {counts.max()}, "
        f"{int((counts == 0).sum()):,} anchors with none",
        f"  strong     {int(s_counts.sum()):,} kept; {int((s_counts > 0).sum()):,} anchors have one or more"
        + (f"; {m['strong_groups']:,} groups" if m.get("strong_groups") is not None else ""),
    ]
    if len(scores):
        q = np.quantile(scores, [0.0, 0.5, 1.0])
        lines.append(f"  scores     min {q[0]:.4f}, median {q[1]:.4f}, max {q[2]:.4f}")
    if m.get("tau") is not None:
        lines.append(f"  threshold  tau {m['tau']:.6g}, realised fraction {m['realised_fraction']:.6g}")
    if m.get("recall") is not None:
        r, a = m["recall"], m.get("approximate") or {}
        if a.get("method") == "faiss":
            how = (f"faiss {a['index']} index of {a['vectors']}, {a['candidates_per_anchor']} candidates per "
                   f"anchor{' on the GPU' if a.get('gpu') else ''}")
        else:
            how = f"{a['bands']} bands × {a['rows']} rows of {a['num_perm']} permutations"
            if a.get("candidates") == "lsh-collisions":
                how += f", {a['kept_per_anchor']} most-colliding kept per anchor"
        lines.append(f"  recall     {r['value']:.4f} ({r['of']}, {r['sample']} sampled anchors); "
                     f"{how}, {a.get('candidate_pairs', 0):,} candidate pairs")
    el = m["elapsed_s"]
    lines.append("  elapsed    " + ", ".join(f"{k} {v:.2f}s" for k, v in el.items()))
    return lines


def plot_histograms(out: str, path: str) -> None:
    """Similarity histogram and neighbour-count histogram of a build, as one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'simmine[plot]'") from None
    m = read_manifest(out, "build")
    counts, scores = _weak_arrays(out)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.hist(scores, bins=50, color="#3b6ea8")
    a.set_xlabel(f"{m['params']['metric']} similarity of kept weak positives")
    a.set_ylabel("pairs")
    a.set_title("weak positive similarity")
    b.hist(counts, bins=min(50, max(int(counts.max()) + 1, 1)), color="#a8563b")
    b.set_xlabel("weak positives per anchor")
    b.set_ylabel("anchors")
    b.set_title(f"neighbour counts (N={m['n_anchors']:,})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------- verify
def sequences_of_buckets(out: str, anchors: np.ndarray):
    """The anchors sharing a bucket with any of ``anchors``, rebuilt from the build's sequences: (their seq_ids
    ascending, their SequenceSet, N, df per item code). Items are coded in sorted value order, so
    every history's codes keep the order they had in the build; df counts, over all N anchors, the
    histories holding each of these items (TF-IDF's idf), in one pass of bounded memory."""
    import pyarrow.compute as pc

    from .anchors import SequenceSet, encode_sorted, encode_with
    from .csr import document_frequency

    from .positives import Positives

    table = Positives(out).sequences()
    n = table.num_rows
    bucket = table.column("bucket")
    if bucket.null_count < len(bucket):
        bucket_codes, _ = encode_sorted(bucket)
        members = np.flatnonzero(np.isin(bucket_codes, bucket_codes[anchors]))
    else:
        bucket_codes, members = None, np.arange(n)
    part = table.take(pa.array(members))
    hist = part.column("history").combine_chunks()
    start = hist.offsets[0].as_py()
    values = hist.values.slice(start, hist.offsets[-1].as_py() - start)
    codes, dictionary = encode_sorted(pa.concat_arrays([values, part.column("target").combine_chunks()]))
    df = np.zeros(len(dictionary), dtype=np.int64)
    for batch in table.to_batches():  # histories holding each item, all anchors, a batch at a time
        h = batch.column(batch.schema.get_field_index("history"))
        flat = pc.list_flatten(h)
        rows = np.repeat(np.arange(len(h)), pc.list_value_length(h).to_numpy(zero_copy_only=False))
        known = pc.is_in(flat, value_set=dictionary).to_numpy(zero_copy_only=False)
        indptr = np.concatenate(([0], np.cumsum(np.bincount(rows[known], minlength=len(h)))))
        df += document_frequency(indptr, encode_with(flat.filter(pa.array(known)), dictionary), len(dictionary))
    n_items = len(values)
    seqs = SequenceSet(
        indptr=(hist.offsets.to_numpy() - start).astype(np.int64), items=codes[:n_items], item_values=dictionary,
        user_values=part.column("user_id").combine_chunks(), target_codes=codes[n_items:],
        bucket_codes=None if bucket_codes is None else bucket_codes[members], bucket_labels=None,
        n_users=len(members), skipped=0)
    return members, seqs, n, df


def _file_of(manifest: dict, anchor: int):
    """(weak file, strong file) holding an anchor's row."""
    for sh in shard_files(manifest):
        if sh["rows"][0] <= anchor < sh["rows"][1]:
            return sh["weak"], sh["strong"]
    raise IndexError(f"anchor {anchor} is in no shard")


def verify(out: str, sample: int = 20, seed: int = 0) -> list:
    """Problems found in a build (empty: it verifies): checksums, row counts, and a seeded sample of anchors
    recomputed with the reference backend, weak and strong."""
    from .backends import reference
    from .engines.local import make_plan, select_anchors
    from .positives import Positives
    from .metrics import prepare_features, resolve_metric
    from .select import GlobalThreshold, make_selection
    from .anchors import owner_codes

    m = read_manifest(out)
    if m.get("kind") == "items":
        from .graphs import verify_items

        return verify_items(out, sample, seed)
    problems = check_files(out, m)
    if problems:
        return problems
    p = m["params"]
    n = m["n_anchors"]
    rng = np.random.default_rng(seed)
    anchors = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    members, seqs, n, df = sequences_of_buckets(out, anchors)  # the sample's buckets, not the whole build
    oracle = reference
    if p["metric"] == "embedding":
        from .backends import dense as oracle
        from .metrics import dense_features
        from .vectors import load_embeddings

        emb = m["input"]["embeddings"]
        if not os.path.isfile(emb["path"]) or sha256_file(emb["path"]) != emb["sha256"]:
            return [f"{emb['path']}: the embeddings this build read are missing or changed"]
        features = dense_features(load_embeddings(emb["path"], n)[members])
    else:
        features = prepare_features(seqs, resolve_metric(p["metric"]), p["ngram_n"] or 2, df=df, n_total=n)
    if p.get("anchors") == "prefix" and p.get("same_user") == "exclude":
        features.owners = owner_codes(seqs.user_values)  # a user's anchors are consecutive seq_ids
    plan = make_plan(seqs.n, seqs.bucket_codes, features.owners)
    sel = make_selection(p["alpha"], p["alpha_scope"] or "anchor", p["k"], p["min_sim"], p["max_per_anchor"])
    threshold = GlobalThreshold(m["tau"], 0, 0) if sel.mode == "alpha_global" else None
    local = np.searchsorted(members, anchors)
    want = select_anchors(features, plan, sel, oracle, local, threshold)
    bucket = seqs.bucket_codes if seqs.bucket_codes is not None else np.zeros(seqs.n, dtype=np.int32)
    pos = Positives(out)
    for i, li in zip(anchors.tolist(), local.tolist()):
        want_n, scores = want[li]
        want_n = members[want_n].astype(np.uint32)
        got_n, got_s = pos.weak(i)
        weak_file, strong_file = _file_of(m, i)
        if len(got_n) != len(want_n) or not np.array_equal(got_n, want_n):
            problems.append(f"{weak_file}: anchor {i}: neighbours differ from the reference "
                            f"(stored {got_n[:5].tolist()}..., expected {want_n[:5].tolist()}...)")
        elif not np.allclose(got_s, scores, rtol=0, atol=1e-6):
            problems.append(f"{weak_file}: anchor {i}: scores differ from the reference")
        other = features.owners != features.owners[li] if features.owners is not None else np.arange(seqs.n) != li
        same = members[np.flatnonzero((seqs.target_codes == seqs.target_codes[li]) & (bucket == bucket[li]) & other)]
        same = same.astype(np.uint32)
        if not np.array_equal(pos.strong(i), same):
            problems.append(f"{strong_file}: anchor {i}: strong positives differ from the same-target anchors")
    return problems
