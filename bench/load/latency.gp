# gnuplot -e "csv='latency.csv'; wcsv='latency-windows.csv'; top='150'; out='bench-latency.png'; subtitle='...'" bench/load/latency.gp
# make bench-load's open loop (bench/load/run.sh): p99 sojourn against the
# offered load, then the p99 and the RSS of each 1 s window of arrivals at
# the highest load (latency.csv: name,load_pct,...,p99_us (17),...,status
# (24); latency-windows.csv: name,load_pct,window,t_s,count,p50_us,p99_us,
# rss_kb).
set datafile separator ','
set terminal pngcairo size 1500,520 noenhanced font ',10'
set output out
names = system("awk -F, 'NR > 1 && $24 == \"ok\" && !seen[$1]++ {print $1}' '".csv."'")
rows(i) = sprintf("< awk -F, '$1 == \"%s\" && $24 == \"ok\"' '%s'", word(names, i), csv)
wins(i) = sprintf("< awk -F, '$1 == \"%s\" && $2 == \"%s\"' '%s'", word(names, i), top, wcsv)
width(i) = word(names, i)[1:10] eq 'WorkerPool' ? 3 : 1.5
set multiplot layout 1,3 title "Open loop (Poisson arrivals, sojourn from the scheduled arrival)\n".subtitle
set grid
set logscale y
unset key
set xlabel 'offered load, % of capacity'
set ylabel 'p99 sojourn, ms'
set xrange [40:160]
plot for [i=1:words(names)] rows(i) using 2:($17 / 1000) with linespoints lc i lw width(i) \
       pt 7 ps 0.8 title word(names, i)
set xlabel sprintf('seconds (window of arrival), at %s%% load', top)
set ylabel 'p99 sojourn of the window, ms'
set autoscale x
set xrange [0:*]
plot for [i=1:words(names)] wins(i) using 4:($7 / 1000) with linespoints lc i lw width(i) \
       pt 7 ps 0.8 title word(names, i)
set ylabel 'largest VmRSS in the window, MB'
set key top left
plot for [i=1:words(names)] wins(i) using 4:($8 / 1024) with linespoints lc i lw width(i) \
       pt 7 ps 0.8 title word(names, i)
unset multiplot
