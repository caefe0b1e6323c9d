# awk -f analyze.awk -v phase_ms=2000 -v windows=W.csv RESULTS SAMPLES
# bench/io/run.sh's arithmetic, one place for the C and Go rows. RESULTS:
# "name,shape,RESULT k=v ..." per cell; SAMPLES: name,shape,t_ms,jobs,threads
# (cumulative finished tasks every sample_ms from the first submit). Prints
# io.csv on stdout and C's 100 ms windows into `windows`.
#   steady: jobs/s over the second half of the run
#   t90_ms: the first sample at which the last 20 ms ran at >= 0.9 x steady
#   C: per 100 ms window jobs/s (empty where no sample fell in it: a Go
#   sampler starved by its goroutines); a phase's rate is the mean of its windows
#   from 200 ms after its switch on; the reference for A (B) phases is the
#   best fixed pool's; settle: ms from a switch to the end of the first
#   window at >= 0.9 x that reference (-1: never in that phase)
BEGIN { FS = "," }
FNR == NR {
    key = $1 "," $2; keys[++nk] = key
    n = split($3, kv, " ")
    for (i = 2; i <= n; i++) { split(kv[i], p, "="); R[key, p[1]] = p[2] }
    next
}
FNR == 1 { next }
{
    key = $1 "," $2; i = S[key]++
    T[key, i] = $3; J[key, i] = $4; TH[key, i] = $5
    if ($5 > MT[key]) MT[key] = $5
}
function rate(key, a, b) { return T[key, b] > T[key, a] ? (J[key, b] - J[key, a]) * 1000 / (T[key, b] - T[key, a]) : 0 }
END {
    print "name,shape,family,workers,max_workers,seconds,reps,submitted,completed,discarded,jobs_per_s,steady_jobs_per_s,t90_ms,max_cpu,max_threads,threads_end,c_a_jobs_per_s,c_b_jobs_per_s,c_settle_max_ms,c_settle_ms,back_ms,idle_fresh_ms,idle_ms,idle_threads,load1,status"
    print "name,window,t_ms,phase,jobs_per_s,threads,ref_jobs_per_s" > windows
    # per cell: rates; per C cell: windows and phase means
    for (c = 1; c <= nk; c++) {
        key = keys[c]; n = S[key]; last = n - 1
        if (n < 2) continue
        h = 0; while (h < last && T[key, h] < T[key, last] / 2) h++
        steady[key] = rate(key, h, last); all[key] = rate(key, 0, last)
        t90[key] = -1
        for (i = 2; i < n; i++) if (rate(key, i - 2, i) >= 0.9 * steady[key]) { t90[key] = T[key, i]; break }
        split(key, nm, ",")
        if (nm[2] != "C") continue
        # window k: from the first sample at or after 100k ms to the first at
        # or after 100(k+1) ms; none when the sampler was late across it
        nw[key] = int(T[key, last] / 100); a = 0
        for (k = 0; k < nw[key]; k++) {
            b = a; while (b < last && T[key, b] < (k + 1) * 100) b++
            WI[key, k] = a
            if (b == a) { a = b; continue }
            W[key, k] = rate(key, a, b); a = b
            ph = int(k * 100 / phase_ms); kind = ph % 2 ? "B" : "A"
            if (k * 100 >= ph * phase_ms + 200) { sum[key, kind] += W[key, k]; cnt[key, kind]++ }
        }
        for (kk = 1; kk <= 2; kk++) {
            kind = kk == 1 ? "A" : "B"
            mean[key, kind] = cnt[key, kind] ? sum[key, kind] / cnt[key, kind] : 0
            if (nm[1] ~ /^wpool\/fixed-/ && mean[key, kind] > ref[kind]) ref[kind] = mean[key, kind]
        }
    }
    for (c = 1; c <= nk; c++) {
        key = keys[c]; split(key, nm, ",")
        fam = nm[1] ~ /^wpool\/fixed-/ ? "fixed" : nm[1] ~ /^wpool\// ? "adaptive" : "peer"
        settles = ""; smax = ""
        if (nm[2] == "C" && (key in nw)) {
            smax = 0
            for (q = 1; q * phase_ms < nw[key] * 100; q++) {
                kind = q % 2 ? "B" : "A"; s = -1
                for (k = int(q * phase_ms / 100); k < nw[key] && k * 100 < (q + 1) * phase_ms; k++)
                    if ((key, k) in W && W[key, k] >= 0.9 * ref[kind]) { s = (k + 1) * 100 - q * phase_ms; break }
                settles = settles (q > 1 ? ";" : "") s
                if (s < 0 || smax < 0) smax = -1; else if (s > smax) smax = s
            }
            for (k = 0; k < nw[key]; k++) {
                ph = int(k * 100 / phase_ms); kind = ph % 2 ? "B" : "A"
                printf "%s,%d,%d,%s,%s,%s,%.0f\n", nm[1], k, (k + 1) * 100, kind,
                       (key, k) in W ? sprintf("%.0f", W[key, k]) : "", TH[key, WI[key, k]], ref[kind] > windows
            }
        }
        st = R[key, "status"]; if (st == "") st = "FAILED:no-result"
        printf "%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n",
            nm[1], nm[2], fam, R[key, "workers"], R[key, "max_workers"], R[key, "seconds"],
            R[key, "reps"], R[key, "submitted"], R[key, "completed"], R[key, "discarded"],
            (key in all) ? sprintf("%.0f", all[key]) : "", (key in steady) ? sprintf("%.0f", steady[key]) : "",
            (key in t90) ? sprintf("%.0f", t90[key]) : "", R[key, "max_cpu"], MT[key], R[key, "threads_end"],
            nm[2] == "C" ? sprintf("%.0f", mean[key, "A"]) : "", nm[2] == "C" ? sprintf("%.0f", mean[key, "B"]) : "",
            smax, settles, R[key, "back_ms"] == "-1.0" ? "" : R[key, "back_ms"],
            R[key, "idle_fresh_ms"], R[key, "idle_ms"], R[key, "idle_threads"], R[key, "load1"], st
    }
}
