"""Offline mixing experiments over a dump."""
import sys, itertools
import numpy as np
d = np.load(sys.argv[1])
c, s, lens, t = d["c"], d["s"].astype(np.float64), d["lens"], d["t"]
names = list(d["names"]); logits = d["logits"]
N_ALL = len(lens)
keep = lens > 0
t = t[keep]; lens = lens[keep]
off = np.concatenate([[0], np.cumsum(lens)])
n = len(lens)
print(names, "tests", n, "dump recall@10", d["hit"].mean())
seg = np.repeat(np.arange(n), lens)
is_t = c == t[seg]
print("target in candidates", np.bincount(seg[is_t], minlength=n).astype(bool).mean())

def seg_max(x):
    return np.maximum.reduceat(x, off[:-1]) if len(x) else x
def dist(col, logit, temp=1.0):
    x = s[:, col]
    mx = np.maximum.reduceat(x, off[:-1])[seg]; mn = np.minimum.reduceat(x, off[:-1])[seg]
    flat = mx == mn
    if logit:
        z = np.exp((x - mx) / temp)
    else:
        z = np.maximum(x, 0)
    tot = np.add.reduceat(z, off[:-1])[seg]
    out = np.where((tot > 0) & ~flat, z / np.where(tot > 0, tot, 1), 0)
    return out
def rankpos(x):
    # rank of each candidate within its segment (0 = best)
    order = np.lexsort((-x, seg))
    r = np.empty_like(order); 
    starts = off[:-1][seg[order]]
    r[order] = np.arange(len(x)) - starts
    return r
def recall(score, k=10):
    # rank of target: count candidates in segment with score > target score
    ts = np.full(n, np.nan); ts[seg[is_t]] = score[is_t]
    better = np.add.reduceat((score > ts[seg]).astype(np.int64), off[:-1])
    ok = ~np.isnan(ts)
    return np.sum(ok & (better < k)) / N_ALL
for j, nm in enumerate(names):
    print(nm, "alone", round(recall(s[:, j]), 4))
D = {}
def getd(j, temp=1.0):
    key = (j, temp)
    if key not in D:
        D[key] = dist(j, bool(logits[j]), temp)
    return D[key]
print("current weights mean", d["w"].mean(0).round(3))
base = sum(d["w"].mean(0)[j] * getd(j) for j in range(4))
print("mixture (mean weights)", round(recall(base), 4))
res = []
for temp in [1.0, 2.0, 4.0]:
    for wp, wc, wm, wr in itertools.product([0, 0.05, 0.2], [1.0], [0.25, 0.5, 1, 2], [0, 0.25, 0.5]):
        sc = wp * getd(0) + wc * getd(1) + wm * getd(2, temp) + wr * getd(3, temp)
        res.append((round(recall(sc), 4), temp, wp, wc, wm, wr))
res.sort(reverse=True)
for r in res[:12]: print(r)
# rank fusion
R = [rankpos(s[:, j]) for j in range(4)]
for kk in [10, 30, 60]:
    for wv in [(0.2,1,1,0.5),(0,1,1,0),(0.2,1,1,0),(0,1,0.5,0.5),(0.1,1,0.7,0.3)]:
        sc = sum(wv[j] / (kk + R[j]) for j in range(4))
        print("rrf", kk, wv, round(recall(sc), 4))
