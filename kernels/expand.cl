/* Kernels of shapes computed at run time (src/nn/op_expand.c):
 *   expand  y = x broadcast to y's shape (numpy rules): each output element reads the input
 *           element at sum(index_d * step_d), step 0 along the broadcast axes.
 *   fill    y = value everywhere (ConstantOfShape with a float fill).
 * Layout   row-major; axes right-aligned into 8 (int8 arguments), the first `first` unused.
 * Storage  X_HALF / Y_HALF: that operand is stored as half (fp16 mode).
 * Assumes  the global size is rounded up to the work-group size: out-of-range items return.
 */
#include "storage.clh"

__kernel void expand(__global const X_T *x, __global Y_T *y, uint n, int first, int8 dims,
                     int8 steps)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    int dv[8], sv[8];
    vstore8(dims, 0, dv);
    vstore8(steps, 0, sv);
    int rest = (int)i, at = 0;
    for (int d = 7; d >= first; d--) {
        at += rest % dv[d] * sv[d];
        rest /= dv[d];
    }
    STORE_Y(LOAD_X(x, at), y, i);
}

__kernel void fill(__global Y_T *y, uint n, float value)
{
    uint i = get_global_id(0);
    if (i >= n) return;
    STORE_Y(value, y, i);
}
