#!/usr/bin/env bash
# scalefit on real, bundled data, end to end (run from anywhere; it works in the repository root):
#
#   1. fit the Chinchilla law to Gadre et al.'s 35 RedPajama runs (11M to 6.9B parameters), 1,000 bootstrap draws
#   2. forecast the loss of a 7B model trained on 1.4T tokens, with the interval a new run would fall in
#   3. fit the multi-power law to the official 400M loss curves (three learning-rate schedules)
#   4. compare a cosine and a WSD schedule for a 3x longer run, and optimise the schedule for 24k steps
#   5. write report.html (one offline file: the fit, its figures, forecasts and fit.json inside)
#
# Everything is written under one demo folder (default out/demo; or give another as the first argument).
# The demo replaces only its own files: it refuses a folder that holds anything it did not write.
# The data: data/examples/*/PROVENANCE.md (MIT-licensed, licence files beside the data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/out/demo}"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
cd "$ROOT"  # the data are named relative to the repository, as fit.json and the reports record them
GADRE=data/examples/gadre/gadre2024_final_losses.csv
CURVES=data/examples/mpl_official/curves_400m_train.csv
MARK=".scalefit-demo"
OWN=(gadre_fit.json gadre_fit.png mpl_fit.json mpl_fit.png schedules.png schedule.csv
     schedule.png report.html report_multipower.html "$MARK")

# Refuse a folder with anything in it that this demo did not write (so --force below only ever replaces ours).
if [ -e "$OUT" ]; then
  if [ ! -d "$OUT" ]; then echo "demo: $OUT exists and is not a folder" >&2; exit 2; fi
  if [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/$MARK" ]; then
    echo "demo: $OUT holds files the demo did not write; give another folder: examples/demo.sh DIR" >&2; exit 2
  fi
  for f in "$OUT"/* "$OUT"/.[!.]*; do
    [ -e "$f" ] || continue
    name="$(basename "$f")"
    case " ${OWN[*]} " in *" $name "*) ;; *) case "$name" in gadre_fit.*.draws.parquet|mpl_fit.*.draws.parquet) ;;
      *) echo "demo: $f was not written by the demo; move it or give another folder" >&2; exit 2 ;; esac ;; esac
  done
fi
mkdir -p "$OUT"
touch "$OUT/$MARK"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. Chinchilla law on Gadre et al.'s RedPajama runs (35 models, C4 validation loss), 1,000 bootstrap draws"
scalefit fit "$GADRE" --where dataset=rpj --col loss=loss_c4_val -b 1000 --seed 0 \
  --out "$OUT/gadre_fit.json" --plot "$OUT/gadre_fit.png" --force

step "2. Forecast: a 7B model trained on 1.4T tokens"
scalefit predict --fit "$OUT/gadre_fit.json" --params 7B --tokens 1.4T --interval prediction

step "3. Multi-power law on the official 400M loss curves (cosine, constant, two-stage; 24k and 16k steps)"
# --no-calibrate keeps the demo quick; with it (the default when bootstrapping) the fit also backtests
# itself (leave one curve out, forecast each curve's second half) for calibrated intervals: a few minutes.
scalefit fit "$CURVES" --law multipower -b 100 --seed 0 --no-calibrate \
  --out "$OUT/mpl_fit.json" --plot "$OUT/mpl_fit.png" --force

step "4. Schedules: cosine vs WSD for a 3x longer run; the best schedule for 24k steps"
W="peak=3e-4,warmup=2160"
scalefit schedule compare --fit "$OUT/mpl_fit.json" \
  -s "cosine:$W,steps=72000,floor=3e-5" -s "wsd:$W,steps=72000,cooldown=0.2,floor=3e-5" \
  --plot "$OUT/schedules.png" --force
scalefit schedule optimize --fit "$OUT/mpl_fit.json" --peak 3e-4 --warmup 2160 --steps 24000 --floor 3e-5 \
  --out "$OUT/schedule.csv" --plot "$OUT/schedule.png" --force

step "5. Reports: one self-contained HTML file per fit (open it in a browser; it works offline)"
scalefit report "$OUT/gadre_fit.json" --data "$GADRE" --where dataset=rpj \
  --at params=7B,tokens=1.4T --out "$OUT/report.html" --force
scalefit report "$OUT/mpl_fit.json" --data "$CURVES" \
  --at "long_cosine=cosine:$W,steps=72000,floor=3e-5" --out "$OUT/report_multipower.html" --force

step "done: everything is in $OUT"
ls -1 "$OUT"
