# Tasks per state against seconds since `service create` (bench/run).
# Variables from the command line: datafile, outfile, cols, ttl.
set terminal pngcairo size 900,500 noenhanced
set output outfile
set title ttl
set xlabel "seconds since service create"
set ylabel "tasks"
set key outside right top
set grid
set yrange [0:*]
plot for [i=2:int(cols)] datafile using 1:i with linespoints pointsize 0.5 title columnheader(i)
