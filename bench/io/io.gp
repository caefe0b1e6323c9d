# gnuplot -e "csv='io.csv'; samples='io-samples.csv'; out='bench-io.png'; phase=2000; subtitle='...'" bench/io/io.gp
# make bench-io (bench/io/run.sh): jobs/s against workers for the fixed
# pools in shapes A and B, the other rows as horizontal lines; the elastic
# pools' threads over time from A's cold start and through C.
# io.csv columns: name (1), shape (2), family (3), workers (4), ...,
# steady_jobs_per_s (12), ..., status (26); io-samples.csv: name, shape,
# t_ms, jobs, threads.
set datafile separator ','
set terminal pngcairo size 1400,1000 noenhanced font ',10'
set output out
ok(s) = sprintf("$26 == \"ok\" && $2 == \"%s\"", s)
others(s) = system("awk -F, 'NR > 1 && ".ok(s)." && $3 != \"fixed\" {print $1}' '".csv."'")
rowval(n, s) = real(system(sprintf("awk -F, '$1 == \"%s\" && %s {print $12}' '%s'", n, ok(s), csv)))
fixed(s) = sprintf("< awk -F, '%s && $3 == \"fixed\"' '%s'", ok(s), csv)
oA = others("A"); oB = others("B")
array vA[words(oA) > 0 ? words(oA) : 1]; array vB[words(oB) > 0 ? words(oB) : 1]
do for [i=1:words(oA)] { vA[i] = rowval(word(oA, i), "A") }
do for [i=1:words(oB)] { vB[i] = rowval(word(oB, i), "B") }
width(n) = n[1:14] eq 'wpool/adaptive' ? 3 : 1.5

set multiplot layout 2,2 title "bench-io: tasks that poll() a timerfd for 1 ms, then hash ~50 us (A), or hash once (B)\n".subtitle
set logscale x 2
set xrange [0.8:640]
set xtics (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
set grid
set key outside right top
set xlabel 'workers (fixed wpool pools)'
set ylabel 'jobs/s (second half of the run)'
set title 'A: 1 ms wait + hashing'
plot fixed("A") using 4:12 with linespoints lw 3 pt 7 lc rgb 'black' title 'wpool fixed', \
     for [i=1:words(oA)] vA[i] with lines lw width(word(oA, i)) lc i+1 title word(oA, i)
set title 'B: one seed job (CPU only)'
set logscale y
plot fixed("B") using 4:12 with linespoints lw 3 pt 7 lc rgb 'black' title 'wpool fixed', \
     for [i=1:words(oB)] vB[i] with lines lw width(word(oB, i)) lc i+1 title word(oB, i)
unset logscale
set xtics autofreq
set autoscale x
set yrange [0:*]
set ylabel 'threads (stats.threads)'
set xlabel 'ms from the first submit'
set title 'A, cold start: the elastic pools'' threads'
set xrange [0:1000]
series(n, s) = sprintf("< awk -F, '$1 == \"%s\" && $2 == \"%s\"' '%s'", n, s, samples)
plot series('wpool/adaptive', 'A') using 3:5 with lines lw 2 lc 2 title 'wpool/adaptive', \
     series('wpool/adaptive+hints', 'A') using 3:5 with lines lw 2 lc 3 title 'wpool/adaptive+hints'
set autoscale x
set xlabel sprintf('ms from the first submit (A and B alternate every %d ms, A first)', phase)
set title 'C: the elastic pools'' threads'
plot series('wpool/adaptive', 'C') using 3:5 with lines lw 2 lc 2 title 'wpool/adaptive', \
     series('wpool/adaptive+hints', 'C') using 3:5 with lines lw 2 lc 3 title 'wpool/adaptive+hints'
unset multiplot
