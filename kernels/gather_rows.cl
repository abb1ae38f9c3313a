/* Gather along axis 0 of a constant float table with indices computed at run time (an
 * embedding lookup): y[p][e] = table[idx[p]][e], a negative index counting from the end.
 * INDEX_T: the indices' type (long or int); Y_HALF: the output stored as half. An index
 * outside [-rows, rows) writes zeros and is reported through `flag` (set to 1 by the first
 * work-item that finds one, which also stores the index and its position in `bad`), so the
 * host can fail the run naming it instead of reading outside the table. */
#include "storage.clh"

kernel void gather_rows(global const float *table, global const INDEX_T *idx, global Y_T *y,
                        int n, int row_len, long rows, global volatile int *flag,
                        global long *bad)
{
    int i = get_global_id(0);
    if (i >= n) return;
    int p = i / row_len, e = i - p * row_len;
    long id = (long)idx[p];
    long row = id < 0 ? id + rows : id;
    if (row < 0 || row >= rows) {
        if (atomic_cmpxchg(flag, 0, 1) == 0) {
            bad[0] = id;
            bad[1] = p;
        }
        STORE_Y(0.0f, y, i);
        return;
    }
    STORE_Y(table[row * row_len + e], y, i);
}
