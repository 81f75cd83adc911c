# rewrite.cmake — cmake -DIN=kernel.cu -DOUT=kernel.cpp -P rewrite.cmake: turns a CUDA source into
# C++ for the CPU emulator (tests/cuda_emu/README.md). Two rewrites, nothing else:
#   k<<<grid, block, smem, stream>>>(args)   ->  EMU_LAUNCH(k, grid, block, smem, stream)(args)
#   (k may be a template's specialisation, k<T><<<...>>>: one level of <...>, no nesting)
#   extern __shared__ T name[];               ->  T *name = (T *)emu::dynamic_shared();
# Line numbers are kept (#line), so compiler errors point into the .cu file.
file(READ "${IN}" src)
string(REGEX REPLACE "([A-Za-z_][A-Za-z0-9_]*(<[^<>;(){}]*>)?)<<<" "EMU_LAUNCH(\\1, " src "${src}")
string(REPLACE ">>>" ")" src "${src}")
string(REGEX REPLACE "extern __shared__ ([A-Za-z_][A-Za-z0-9_ ]*[A-Za-z0-9_]) ([A-Za-z_][A-Za-z0-9_]*)\\[\\];"
       "\\1 *\\2 = (\\1 *)emu::dynamic_shared();" src "${src}")
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${src}")
file(RENAME "${OUT}.tmp" "${OUT}")
