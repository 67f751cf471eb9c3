# Drawn by tlab-report: gnuplot -e "fmt='png'" run2_heatmap.gp  (or fmt='svg')
if (!exists('fmt')) fmt = 'png'
if (fmt eq 'svg') set terminal svg size 900,560 dynamic enhanced font 'sans,12'; else set terminal png size 900,560 font ',11'
set output 'run2_heatmap.' . fmt
set termoption noenhanced
set title 'screened max req/s over the grid'
set xlabel 'max_num_batched_tokens'; set ylabel 'max_num_seqs'
set xtics ('4096' 0, '8192' 1, '12288' 2, '16384' 3); set ytics ('64' 0, '128' 1, '192' 2, '256' 3)
set xrange [-0.5:3.5]; set yrange [-0.5:3.5]
set cblabel 'req/s'; set palette defined (0 '#fff7ec', 1 '#fdbb84', 2 '#d7301f')
set style textbox opaque noborder
plot 'run2_heatmap.dat' using 1:2:3 with image notitle, '' using 1:2:(strcol(4) eq 'ok' ? sprintf('%.2f', $3) : strcol(4)) with labels boxed font ',10' notitle
