# gnuplot -e "csv='sweep.csv'; out='sweep.png'; subtitle='...'" bench/sweep.gp
# ns per job against worker count, one line per pool, from wpool_bench's
# sweep CSV (columns: name,family,workers,rounds,iters,ns_op,...,ns_job,...).
set datafile separator ','
set terminal pngcairo size 960,600 noenhanced font ',10'
set output out
set title "Seed op (10,000 SHA-256 jobs): ns per job against workers\n".subtitle
set logscale x 2
set xrange [0.8:90]
set logscale y
set xtics (1, 2, 4, 8, 16, 32, 64)
set xlabel 'worker threads'
set ylabel 'ns per job (median round, log scale)'
set grid
set key outside right top
families = system("tail -n +2 '".csv."' | awk -F, '$2 != \"Serial\" && $15 == \"ok\" && !seen[$2]++ {print $2}'")
serial = real(system("awk -F, '$1 == \"Serial\" {print $9}' '".csv."'"))
# wpool's rows drawn thick; colours cycle over 8, so after 8 the points and
# dashes change too
width(i) = word(families, i)[1:10] eq 'WorkerPool' ? 3 : 1.5
point(i) = i <= 8 ? 7 : 5
dash(i) = i <= 8 ? 1 : 2
plot for [i=1:words(families)] csv using 3:(strcol(2) eq word(families, i) ? $9 : NaN) \
       with linespoints lc i lw width(i) pt point(i) ps 0.9 dt dash(i) title word(families, i), \
     serial with lines dt 2 lc rgb 'black' title 'Serial (1 thread)'
