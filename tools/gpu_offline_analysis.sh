#!/usr/bin/env bash
# What an NVIDIA GPU would make of cleval's kernels, without a GPU: every kernels/*.cl is
# compiled to PTX by clang's nvptx64 target (OpenCL C 1.2, libclc's nvptx64 builtins linked in),
# then to sm_90 (H100) machine code by ptxas -v, and per kernel the script reports registers,
# spilled bytes, the stack frame (local memory), shared memory and, when nvdisasm is found, the
# share of floating-point FMA instructions in the innermost loops of the SASS.
#
#   tools/gpu_offline_analysis.sh [OUT.txt]     (default: print to stdout)
#
# Needs clang-15 (or CLANG=...), libclc-15 (/usr/lib/clc/nvptx64--nvidiacl.bc, or LIBCLC=...),
# ptxas on PATH (CUDA toolkit or the nvidia-cuda-nvcc wheel) and optionally nvdisasm (PATH or
# the nvidia-cuda-nvdisasm wheel). NVIDIA's own OpenCL driver compiles through its own front
# end, so these are estimates of the same source, not the driver's exact binary: good for
# spotting spills, register pressure that caps occupancy, and loops with little FMA work.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTFILE=${1:-/dev/stdout}
CLANG=${CLANG:-$(command -v clang-15 || command -v clang)}
LIBCLC=${LIBCLC:-/usr/lib/clc/nvptx64--nvidiacl.bc}
ARCH=${ARCH:-sm_90}
NVDISASM=${NVDISASM:-$(command -v nvdisasm || python3 -c 'import glob, nvidia
print(next(iter(sorted(glob.glob(nvidia.__path__[0] + "/*/bin/nvdisasm"))), ""))' 2>/dev/null)}
for tool in "$CLANG" ptxas; do
  command -v "$tool" > /dev/null || { echo "gpu_offline_analysis: $tool not found" >&2; exit 2; }
done
[ -f "$LIBCLC" ] || { echo "gpu_offline_analysis: $LIBCLC not found (apt-get install libclc-15)" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The fp32 options the GPU path passes (src/nn/*.c, src/knn, src/metrics); tiles as the H100
# run chose them (TS=32 WPT=4, bench/results/h100_eval_profile.txt). A program missing here
# is compiled with no options and flagged, so a new kernels/*.cl file is never skipped silently.
declare -A OPTIONS=(
  [auc]=""
  [cast]="-DSRC_T=uchar -DSRC_FLOAT=0 -DDST_T=float -DDST_FLOAT=1 -DCONV=0 -DROUND_HALF=0 -DPREP=1 -DNHWC=0"
  [conv]="-DCLAMP=0 -DTS=32 -DWPT=4 -DX_HALF=0 -DY_HALF=0 -DW_HALF=0 -DINT8=0 -DI8_FLOAT=0"
  [drift]="-DDRIFT_FP64=0"
  [elementwise]="-DA_HALF=0 -DB_HALF=0 -DY_HALF=0"
  [errors]=""
  [expand]="-DX_HALF=0 -DY_HALF=0"
  [gather_rows]="-DINDEX_T=long -DY_HALF=0"
  [gemm]="-DHAS_C=1 -DCLAMP=0 -DTS=32 -DWPT=4 -DA_HALF=0 -DB_HALF=0 -DC_HALF=0 -DY_HALF=0 -DINT8=0 -DI8_FLOAT=0"
  [head]="-DROWS=4 -DWG=32 -DKT=64 -DCMAX=32 -DHAS_C=1 -DSOFTMAX=2"
  [histogram]="-DPAIRED=1"
  [knn_exact]="-DMETRIC_COSINE=0"
  [knn_scores]=""
  [layout]="-DX_HALF=0 -DY_HALF=0"
  [pool]="-DX_HALF=0 -DY_HALF=0"
  [quantize]=""
  [reduce]="-DX_HALF=0 -DY_HALF=0 -DREDUCE_OP=0"
  [rnn]="-DY_HALF=0 -DH0_HALF=0 -DC0_HALF=0 -DYH_HALF=0 -DYC_HALF=0 -DCLIP=0 -DINPUT_FORGET=0 -DLBR=1 -DACT_F0=0 -DACT_G0=1 -DACT_H0=1 -DACT_F1=0 -DACT_G1=1 -DACT_H1=1"
  [scores]=""
  [softmax]="-DX_HALF=0 -DY_HALF=0"
)

# Innermost loops of one kernel's SASS: a backward branch closes a loop from its target label
# to itself; a loop is innermost when no other loop lies inside it. Prints "fma total" summed
# over the innermost loops, then the same for the one innermost loop with the most FMAs (the
# compute loop; the others load tiles or check bounds). Positions counted in instructions. (FFMA, HFMA2 and DFMA against every instruction in them).
loop_fma() {
  awk '
    /^\.L_x_[0-9]+:/ { label = substr($1, 1, length($1) - 1); pending[label] = 1; next }
    /\/\*[0-9a-f]+\*\// {
      n++; pc[n] = n
      for (l in pending) { at[l] = n; delete pending[l] }
      fma[n] = ($0 ~ /[ \t](FFMA|HFMA2|DFMA)[ .]/)
      if ($0 ~ /[ \t]BRA[ .]/ && match($0, /\.L_x_[0-9]+/)) { target[n] = substr($0, RSTART, RLENGTH) }
    }
    END {
      loops = 0
      # at < pc: the one-instruction "BRA to itself" after EXIT is a trap, not a loop.
      for (i = 1; i <= n; i++) if (i in target && (target[i] in at) && at[target[i]] < pc[i]) {
        loops++; lo[loops] = at[target[i]]; hi[loops] = pc[i]
      }
      f = 0; t = 0
      for (a = 1; a <= loops; a++) {
        inner = 1
        for (b = 1; b <= loops; b++)
          if (b != a && lo[b] >= lo[a] && hi[b] <= hi[a] && (lo[b] != lo[a] || hi[b] != hi[a])) inner = 0
        if (!inner) continue
        lf = 0; lt = 0
        for (i = 1; i <= n; i++) if (pc[i] >= lo[a] && pc[i] <= hi[a]) { lt++; lf += fma[i] }
        f += lf; t += lt
        if (lf > bf) { bf = lf; bt = lt }
      }
      print f, t, bf + 0, bt + 0
    }'
}

{
  echo "# cleval kernels compiled offline for NVIDIA $ARCH"
  echo "# $("$CLANG" --version | head -1); libclc $(basename "$LIBCLC"); $(ptxas --version | tail -1)"
  [ -n "$NVDISASM" ] && echo "# FMA share from $("$NVDISASM" --version | tail -1)" ||
    echo "# nvdisasm not found: no FMA share (pip install nvidia-cuda-nvdisasm)"
  echo "# regs: registers per thread (65536 per SM: 64 or fewer keep 1024 threads resident);"
  echo "# spill: bytes stored/loaded to local memory; stack: stack frame bytes; smem: static"
  echo "# shared memory; loop FMA: FMA instructions / all instructions in the innermost loops,"
  echo "# and in brackets the innermost loop with the most FMAs alone."
  printf '%-12s %-22s %5s %11s %6s %6s %s\n' program kernel regs spill stack smem "loop FMA"
  for source in kernels/*.cl; do
    program=$(basename "$source" .cl)
    opts=${OPTIONS[$program]-}
    [ -n "${OPTIONS[$program]+set}" ] || echo "# $program: no options listed here, compiled with none"
    # shellcheck disable=SC2086  # the option string is a list of -D flags
    if ! "$CLANG" -x cl -cl-std=CL1.2 -target nvptx64-unknown-nvidiacl -O3 \
        -Xclang -finclude-default-header -Ikernels $opts -Xclang -mlink-builtin-bitcode \
        -Xclang "$LIBCLC" -S -o "$WORK/$program.ptx" "$source" 2> "$WORK/$program.clang"; then
      echo "$program: clang failed: $(grep -m1 error "$WORK/$program.clang")"
      continue
    fi
    if ! ptxas -arch="$ARCH" -v -o "$WORK/$program.cubin" "$WORK/$program.ptx" \
        > "$WORK/$program.ptxas" 2>&1; then
      # A plain C99 `inline` function that clang chose not to inline is left as an external
      # call with no definition; compile the rest as relocatable code and say so.
      unresolved=$(grep -o "Unresolved extern function '[^']*'" "$WORK/$program.ptxas")
      if [ -z "$unresolved" ] || ! ptxas -c -arch="$ARCH" -v -o "$WORK/$program.cubin" \
          "$WORK/$program.ptx" > "$WORK/$program.ptxas" 2>&1; then
        echo "$program: ptxas failed: $(grep -m1 -i -E 'error|fatal' "$WORK/$program.ptxas")"
        continue
      fi
      echo "# $program: $unresolved (C99 plain inline, not inlined here: no definition to" \
           "link); the figures below count it as a call"
    fi
    [ -n "$NVDISASM" ] && "$NVDISASM" -c "$WORK/$program.cubin" > "$WORK/$program.sass" 2>&1
    # ptxas -v prints, per entry: "Compiling entry function 'K'", then the stack/spill line,
    # then "Used N registers, ... [M bytes smem]".
    awk -v prog="$program" '
      /Compiling entry function/ { match($0, /\047[^\047]+\047/); k = substr($0, RSTART + 1, RLENGTH - 2) }
      /bytes stack frame/ { stack[k] = $1; st[k] = $5; ld[k] = $9 }
      /Used [0-9]+ registers/ {
        match($0, /Used [0-9]+/); regs[k] = substr($0, RSTART + 5, RLENGTH - 5)
        smem[k] = 0; if (match($0, /[0-9]+ bytes smem/)) smem[k] = substr($0, RSTART, RLENGTH - 11)
        order[++n] = k
      }
      END { for (i = n; i >= 1; i--) { k = order[i]; print k, regs[k], st[k] "/" ld[k], stack[k], smem[k] } }
    ' "$WORK/$program.ptxas" | sort | while read -r kernel regs spill stack smem; do
      share="-"
      if [ -s "$WORK/$program.sass" 2>/dev/null ]; then
        read -r f t bf bt < <(sed -n "/^\.text\.$kernel:/,/^\/\/---/p" "$WORK/$program.sass" | loop_fma)
        if [ "${t:-0}" -gt 0 ]; then
          share=$(awk -v f="$f" -v t="$t" -v bf="$bf" -v bt="$bt" 'BEGIN {
            printf "%d/%d %.0f%%", f, t, 100 * f / t
            if (bt > 0) printf "  (FMA loop %d/%d %.0f%%)", bf, bt, 100 * bf / bt }')
        else share="no loop"; fi
      fi
      printf '%-12s %-22s %5s %11s %6s %6s %s\n' "$program" "$kernel" "$regs" "$spill" "$stack" "$smem" "$share"
    done
  done
} > "$OUTFILE"
