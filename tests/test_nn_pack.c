/* Weight packing (src/nn/pack.c) against a plain C reference written from its contract in
 * nn_internal.h: panels [P][K][NR] of NR = 16 * nv columns, zero beyond N, for B stored row-major
 * ([k][n], ns == 1, the contiguous-row path), transposed ([n][k], ks == 1, as Conv weights and
 * Gemm with transB, the tiled path) and with both strides above 1; at odd sizes: one row or
 * column, primes, one past a panel and past a tile of rows, and empty. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "../src/nn/nn_internal.h"

/* Distinct, exactly representable values: a misplaced element cannot match by chance. */
static float value_at(int64_t i)
{
    return (float)(i % 100003) + 0.5f;
}

static void check_layout(int64_t count, int64_t k, int64_t n, uint32_t nv, int layout)
{
    int64_t ks, ns;
    switch (layout) {
    case 0: ks = n, ns = 1; break;          /* [k][n] */
    case 1: ks = 1, ns = k; break;          /* [n][k] */
    default: ks = 2 * n + 1, ns = 2; break; /* strided both ways */
    }
    int64_t bs = layout == 2 ? k * ks + 3 : k * n; /* matrices apart, with a gap */
    size_t elements = (size_t)(count * bs + (layout == 2 ? 0 : 1));
    float *b = malloc((elements ? elements : 1) * sizeof *b);
    assert_non_null(b);
    for (size_t i = 0; i < elements; i++)
        b[i] = value_at((int64_t)i);
    float *packed = nn_pack_panels(b, count, bs, k, n, ks, ns, nv);
    assert_non_null(packed);
    int64_t nr = 16 * (int64_t)nv, panels = (n + nr - 1) / nr;
    assert_int_equal(nn_panel_count(n, nv), panels);
    for (int64_t i = 0; i < count; i++)
        for (int64_t p = 0; p < panels; p++)
            for (int64_t kk = 0; kk < k; kk++)
                for (int64_t j = 0; j < nr; j++) {
                    int64_t col = p * nr + j;
                    float want = col < n ? b[i * bs + kk * ks + col * ns] : 0.0f;
                    float got = packed[((i * panels + p) * k + kk) * nr + j];
                    if (got != want)
                        fail_msg("count %lld k %lld n %lld nv %u layout %d: matrix %lld panel "
                                 "%lld row %lld column %lld holds %g, not %g",
                                 (long long)count, (long long)k, (long long)n, nv, layout,
                                 (long long)i, (long long)p, (long long)kk, (long long)j, got,
                                 want);
                }
    free(packed);
    free(b);
}

static void test_pack_matches_reference(void **state)
{
    (void)state;
    static const int64_t ks[] = {0, 1, 7, 64, 65, 131};
    static const int64_t ns[] = {0, 1, 17, 31, 32, 33, 64, 97};
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t c = 0; c < sizeof ns / sizeof *ns; c++)
            for (uint32_t nv = 1; nv <= 2; nv++)
                for (int layout = 0; layout < 3; layout++)
                    for (int64_t count = 1; count <= 2; count++)
                        check_layout(count, ks[a], ns[c], nv, layout);
}

/* Large enough for the huge-page hint (several MiB), still exact. */
static void test_pack_large(void **state)
{
    (void)state;
    check_layout(1, 1153, 1031, 2, 1);
    check_layout(1, 1031, 1153, 1, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_matches_reference),
        cmocka_unit_test(test_pack_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
