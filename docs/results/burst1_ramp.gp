# Drawn by tlab-report: gnuplot -e "fmt='png'" burst1_ramp.gp  (or fmt='svg')
if (!exists('fmt')) fmt = 'png'
if (fmt eq 'svg') set terminal svg size 900,960 dynamic enhanced font 'sans,12'; else set terminal png size 900,960 font ',11'
set output 'burst1_ramp.' . fmt
set termoption noenhanced
set multiplot layout 3,1 title 'Per second: offered, admitted and good requests (ramp); dotted: the measured window'
set xlabel 'time (s)'; set ylabel 'requests/s'; set grid
set key outside right top font ',9'
set xrange [0:66]; set yrange [0:*]
set title 'direct: goodput 5.10 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst1_ramp_direct.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
set title 'static-64: goodput 15.32 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst1_ramp_static_64.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
set title 'shipped: goodput 15.10 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst1_ramp_shipped.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
unset multiplot
