/* Windowed co-occurrence counts of an encoded corpus chunk, row by row (for LSA).
 *
 * Gustavson's sparse-accumulator scheme: the positions of the chunk's tokens are given grouped by
 * word (a counting sort done in numpy), so the counts of one word's row are gathered by visiting
 * that word's occurrences and adding each neighbour's weight into a dense accumulator of the
 * vocabulary's size, then written out as that row's (column, value) pairs. Every token is visited
 * once per row it belongs to and no pair list is ever sorted, which is what made the vectorised
 * numpy counting slow on large corpora.
 *
 * ids: (n,) int32 vocabulary ids; sentence: (n,) int32 sentence number of each token, with
 * starts: (S + 1,) int64 sentence boundaries; order: (n,) int64 token positions grouped by word,
 * row_ptr: (vocab + 1,) int64, word w's positions are order[row_ptr[w] .. row_ptr[w + 1]).
 * weights: (window + 1,) the weight of a pair d tokens apart (index 0 unused).
 */
#include <stdint.h>
#include <stdlib.h>

/* Rows first .. last - 1 of the counts, written as CSR pieces: indptr (last - first + 1,) local
 * offsets, cols/vals up to capacity entries. Stops early, before a row that might not fit (a row
 * holds at most 2 * window * occurrences entries). Returns the number of rows written, or -1 when
 * memory is short. */
int64_t cooc_rows(const int32_t *ids, const int32_t *sentence, const int64_t *starts,
                  const int64_t *order, const int64_t *row_ptr, int64_t vocab, int window,
                  const double *weights, int64_t first, int64_t last, int64_t *indptr,
                  int32_t *cols, double *vals, int64_t capacity) {
    double *acc = calloc((size_t)vocab, sizeof(double));
    int32_t *touched = malloc(sizeof(int32_t) * (size_t)vocab);
    int64_t used = 0, row = first;
    if (acc == NULL || touched == NULL) {
        free(acc);
        free(touched);
        return -1;
    }
    indptr[0] = 0;
    for (; row < last; row++) {
        int64_t bound = 2 * (int64_t)window * (row_ptr[row + 1] - row_ptr[row]);
        if (bound > vocab) bound = vocab;
        if (used + bound > capacity) break;
        int64_t count = 0;
        for (int64_t k = row_ptr[row]; k < row_ptr[row + 1]; k++) {
            int64_t p = order[k];
            int64_t lo = starts[sentence[p]], hi = starts[sentence[p] + 1];
            for (int d = 1; d <= window; d++) {
                if (p - d >= lo) {
                    int32_t c = ids[p - d];
                    if (acc[c] == 0.0) touched[count++] = c;
                    acc[c] += weights[d];
                }
                if (p + d < hi) {
                    int32_t c = ids[p + d];
                    if (acc[c] == 0.0) touched[count++] = c;
                    acc[c] += weights[d];
                }
            }
        }
        for (int64_t t = 0; t < count; t++) {
            cols[used + t] = touched[t];
            vals[used + t] = acc[touched[t]];
            acc[touched[t]] = 0.0;
        }
        used += count;
        indptr[row - first + 1] = used;
    }
    free(acc);
    free(touched);
    return row - first;
}
