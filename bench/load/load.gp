# gnuplot -e "csv='load.csv'; out='bench-load.png'; subtitle='...'" bench/load/load.gp
# make bench-load's closed loop (bench/load/run.sh): wrk's p99 and the
# server's peak RSS against connections, one colour per server, solid
# without wait, dashed with it (columns: name,conns,wait_ms,...,p99_us
# (11),...,peak_rss_kb (19),...,status (22)).
set datafile separator ','
set terminal pngcairo size 1280,560 noenhanced font ',10'
set output out
ok = "$22 == \"ok\""
names = system("awk -F, 'NR > 1 && ".ok." && !seen[$1]++ {print $1}' '".csv."'")
waits = system("awk -F, 'NR > 1 && ".ok." && !seen[$3]++ {print $3}' '".csv."'")
conns = system("awk -F, 'NR > 1 && ".ok." && !seen[$2]++ {print $2}' '".csv."'")
series(i, j) = sprintf("< awk -F, '$1 == \"%s\" && $3 == \"%s\" && %s' '%s'", \
                       word(names, i), word(waits, j), ok, csv)
label(i, j) = word(names, i).(word(waits, j) eq '0' ? '' : ' wait='.word(waits, j).' ms')
width(i) = word(names, i) eq 'httpd/pool' ? 3 : 1.5
set multiplot layout 1,2 title "Closed loop (wrk, GET /hash/N): p99 latency and peak RSS against connections\n".subtitle
set logscale x 2
set xrange [10:3500]
set xtics ()
do for [k=1:words(conns)] { set xtics add (word(conns, k) int(word(conns, k))) }
set logscale y
set grid
unset key
set xlabel 'connections'
set ylabel 'p99 latency, ms (wrk; the key is on the right)'
plot for [i=1:words(names)] for [j=1:words(waits)] series(i, j) using 2:($11 / 1000) \
       with linespoints lc i dt j lw width(i) pt 7 ps 0.8 title label(i, j)
set ylabel 'server peak RSS, MB (VmHWM)'
set key bottom right
plot for [i=1:words(names)] for [j=1:words(waits)] series(i, j) using 2:($19 / 1024) \
       with linespoints lc i dt j lw width(i) pt 7 ps 0.8 title label(i, j)
unset multiplot
