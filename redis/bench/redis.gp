# gnuplot -e "csv='redis.csv'; out='redis.png'; subtitle='...'" redis/bench/redis.gp
# make bench-redis's rates: csv holds "label,per_second" rows (run.sh makes
# it from redis.csv, the latency rows left out).
set datafile separator ','
set terminal pngcairo size 960,540 noenhanced font ',10'
set output out
set title "wpool-redis on loopback: jobs (or commands) per second\n".subtitle
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.7
set ylabel 'per second'
set logscale y
set yrange [1000:*]
set grid ytics
set xtics rotate by -25 left
unset key
plot csv using 2:xtic(1) lc rgb '#4070a0'
