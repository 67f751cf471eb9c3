# Drawn by tlab-report: gnuplot -e "fmt='png'" burst2_step.gp  (or fmt='svg')
if (!exists('fmt')) fmt = 'png'
if (fmt eq 'svg') set terminal svg size 900,960 dynamic enhanced font 'sans,12'; else set terminal png size 900,960 font ',11'
set output 'burst2_step.' . fmt
set termoption noenhanced
set multiplot layout 3,1 title 'Per second: offered, admitted and good requests (step); dotted: the measured window'
set xlabel 'time (s)'; set ylabel 'requests/s'; set grid
set key outside right top font ',9'
set xrange [0:53]; set yrange [0:*]
set title 'direct: goodput 4.65 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst2_step_direct.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
set title 'static-128: goodput 26.70 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst2_step_static_128.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
set title 'shipped: goodput 26.15 req/s'
unset arrow; set arrow from 5.0,graph 0 to 5.0,graph 1 nohead dt 3 lc rgb 'gray'
set arrow from 45.0,graph 0 to 45.0,graph 1 nohead dt 3 lc rgb 'gray'
plot 'burst2_step_shipped.dat' using 1:2 with lines lw 4 lc rgb '#cccccc' title 'offered', '' using 1:3 with lines lw 1.5 lc rgb '#3182bd' title 'admitted', '' using 1:4 with lines lw 2 lc rgb '#31a354' title 'good (E2E <= 5 s)'
unset multiplot
