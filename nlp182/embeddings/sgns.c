/* word2vec negative sampling (skip-gram and CBOW) for the CPU, one corpus span per call.
 *
 * The batched PyTorch step in word2vec.py pays, per SGD step, for a dozen tensor operations and
 * copies of every row it touches; on a CPU that overhead, not arithmetic, bounds its speed. This
 * file runs the same algorithm the way word2vec's C tool does it: walk the tokens, subsample,
 * draw each centre's window, and update the rows in place one centre at a time (each centre sees
 * the previous one's update; skip-gram's context words of one centre share its noise words, see
 * train_skipgram_window). Several threads call sgns_train_span on different spans at
 * once and update the shared matrices without locks (Hogwild, as word2vec and gensim do).
 *
 * Matrices are row-major float32: w_in and w_out are (vocab, dim). A span is int32 token ids
 * (an encoded corpus's chunk, read in bounded pieces) and int64 sentence boundaries. Compiled on
 * first use by nlp182/embeddings/native.py and called through ctypes (which releases the GIL, so
 * Python threads run spans in parallel).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_EXP 6.0f
/* Fixed buffer sizes: a centre's context words (both sides of the widest window) and one
 * example's noise words. The Python side reads these through sgns_max_window/sgns_max_negative
 * and checks its settings; every entry point checks them again here. */
#define SGNS_MAX_WINDOW 1024
#define SGNS_MAX_CONTEXTS (2 * SGNS_MAX_WINDOW)
#define SGNS_MAX_NEGATIVE 1024
/* *examples is set to one of these when a span cannot be trained. */
#define SGNS_NO_MEMORY (-1)
#define SGNS_BAD_ARGUMENT (-2)

int sgns_max_window(void) { return SGNS_MAX_WINDOW; }
int sgns_max_negative(void) { return SGNS_MAX_NEGATIVE; }

/* Sigmoid and log-sigmoid on [-MAX_EXP, MAX_EXP] by linear interpolation between TABLE_SIZE + 1
 * points (absolute error below 1e-6): word2vec's EXP_TABLE idea, interpolated. expf and logf
 * per term cost about as much as the row arithmetic. Filled once when the library is loaded. */
#define TABLE_SIZE 4096
static float sigmoid_table[TABLE_SIZE + 2], log_sigmoid_table[TABLE_SIZE + 2];

__attribute__((constructor)) static void fill_tables(void) {
    for (int i = 0; i <= TABLE_SIZE + 1; i++) {
        double x = -MAX_EXP + 2.0 * MAX_EXP * i / TABLE_SIZE;
        sigmoid_table[i] = (float)(1.0 / (1.0 + exp(-x)));
        log_sigmoid_table[i] = (float)(-log1p(exp(-x)));
    }
}

/* table at x, for |x| < MAX_EXP */
static inline float lookup(const float *table, float x) {
    float position = (x + MAX_EXP) * ((float)TABLE_SIZE / (2.0f * MAX_EXP));
    int i = (int)position;
    return table[i] + (position - (float)i) * (table[i + 1] - table[i]);
}

/* The SGD step scale and the loss of one (score, label) term; 0 and no loss when saturated. */
static inline float term_step(float score, int is_true, float alpha, double *loss) {
    if (score >= MAX_EXP || score <= -MAX_EXP) return 0.0f;
    float sigma = lookup(sigmoid_table, score);
    *loss -= lookup(log_sigmoid_table, is_true ? score : -score);
    return ((is_true ? 1.0f : 0.0f) - sigma) * alpha;
}

typedef struct {
    float *w_in, *w_out;
    int64_t vocab, dim;
    const float *keep_prob;    /* (vocab,) probability of keeping a token (subsampling) */
    const float *noise_accept; /* (vocab,) alias-table acceptance probabilities */
    const int32_t *noise_alias; /* (vocab,) alias-table alternatives */
    int window, negative, cbow;
} Model;

/* splitmix64: a small, fast generator with a 64-bit state, seeded per span. */
static inline uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform float in [0, 1) from 24 random bits. */
static inline float unit_float(uint64_t r) { return (float)(r & 0xFFFFFF) * (1.0f / 16777216.0f); }

/* A uniform integer in [0, n) from the high 32 bits (Lemire's multiply-shift). */
static inline int64_t below(uint64_t r, int64_t n) { return (int64_t)(((r >> 32) * (uint64_t)n) >> 32); }

static inline int32_t draw_noise(const Model *m, uint64_t *state) {
    uint64_t r = next_random(state);
    int64_t slot = below(r, m->vocab);
    return unit_float(r) < m->noise_accept[slot] ? slot : m->noise_alias[slot];
}

/* Ask the cache for a row of `dim` floats that a later example will read and write. */
static inline void prefetch_row(const float *row, int64_t dim) {
    for (int64_t d = 0; d < dim; d += 16) __builtin_prefetch(row + d, 1, 3);
}

/* One example: logistic steps for the true output word `target` and `negative` noise words given
 * the hidden vector `hidden` (dim,); output rows are updated in place, the hidden step is
 * accumulated into `hidden_step` (dim,). A noise word equal to the target is skipped, and so is
 * a term whose score is saturated (|score| >= MAX_EXP), as in word2vec. Returns the loss. */
static double train_outputs(const Model *m, const float *hidden, int64_t target,
                            const int32_t *noise, float alpha, float *hidden_step) {
    const int64_t dim = m->dim;
    double loss = 0.0;
    for (int64_t d = 0; d < dim; d++) hidden_step[d] = 0.0f;
    for (int k = 0; k <= m->negative; k++) {
        int64_t word = k == 0 ? target : noise[k - 1];
        if (k > 0 && word == target) continue;
        float *row = m->w_out + word * dim;
        float score = 0.0f;
        for (int64_t d = 0; d < dim; d++) score += row[d] * hidden[d];
        float g = term_step(score, k == 0, alpha, &loss);
        if (g == 0.0f) continue;
        for (int64_t d = 0; d < dim; d++) {
            hidden_step[d] += g * row[d];
            row[d] += g * hidden[d];
        }
    }
    return loss;
}

/* Skip-gram for one centre: its `count` context words are inputs that all predict the centre
 * against the same `negative` noise words (Ji et al. 2016, "Parallelizing Word2Vec in Shared and
 * Distributed Memory"). The count x (1 + negative) scores use the rows as they were before this
 * centre, then every row takes its summed step, so each output row is fetched once per centre
 * instead of once per context word, and noise is drawn once per centre. grads holds
 * count * (1 + negative) floats, steps count * dim. */
static double train_skipgram_window(const Model *m, const int32_t *contexts, int count,
                                    int32_t target, const int32_t *noise, float alpha,
                                    float *grads, float *steps) {
    const int64_t dim = m->dim;
    const int outs = 1 + m->negative;
    double loss = 0.0;
    for (int c = 0; c < count; c++) {
        const float *hidden = m->w_in + (int64_t)contexts[c] * dim;
        for (int k = 0; k < outs; k++) {
            int32_t word = k == 0 ? target : noise[k - 1];
            float *g = grads + c * outs + k;
            *g = 0.0f;
            if (k > 0 && word == target) continue;
            const float *row = m->w_out + (int64_t)word * dim;
            float score = 0.0f;
            for (int64_t d = 0; d < dim; d++) score += row[d] * hidden[d];
            *g = term_step(score, k == 0, alpha, &loss);
        }
    }
    for (int c = 0; c < count; c++) {
        float *step = steps + c * dim;
        for (int64_t d = 0; d < dim; d++) step[d] = 0.0f;
        for (int k = 0; k < outs; k++) {
            float g = grads[c * outs + k];
            if (g == 0.0f) continue;
            const float *row = m->w_out + (int64_t)(k == 0 ? target : noise[k - 1]) * dim;
            for (int64_t d = 0; d < dim; d++) step[d] += g * row[d];
        }
    }
    for (int k = 0; k < outs; k++) {
        float *row = m->w_out + (int64_t)(k == 0 ? target : noise[k - 1]) * dim;
        for (int c = 0; c < count; c++) {
            float g = grads[c * outs + k];
            if (g == 0.0f) continue;
            const float *hidden = m->w_in + (int64_t)contexts[c] * dim;
            for (int64_t d = 0; d < dim; d++) row[d] += g * hidden[d];
        }
    }
    for (int c = 0; c < count; c++) {
        float *row = m->w_in + (int64_t)contexts[c] * dim;
        for (int64_t d = 0; d < dim; d++) row[d] += steps[c * dim + d];
    }
    return loss;
}

/* CBOW example: the mean of `count` context input rows predicts `target`; every context row
 * receives the full hidden step (gensim's cbow_mean=1). `scratch` holds 2 * dim floats. */
static double train_cbow(const Model *m, const int32_t *contexts, int count, int64_t target,
                         const int32_t *noise, float alpha, float *scratch) {
    const int64_t dim = m->dim;
    float *hidden = scratch, *step = scratch + dim;
    for (int64_t d = 0; d < dim; d++) hidden[d] = 0.0f;
    for (int c = 0; c < count; c++) {
        const float *row = m->w_in + contexts[c] * dim;
        for (int64_t d = 0; d < dim; d++) hidden[d] += row[d];
    }
    float inverse = 1.0f / (float)count;
    for (int64_t d = 0; d < dim; d++) hidden[d] *= inverse;
    double loss = train_outputs(m, hidden, target, noise, alpha, step);
    for (int c = 0; c < count; c++) {
        float *row = m->w_in + contexts[c] * dim;
        for (int64_t d = 0; d < dim; d++) row[d] += step[d];
    }
    return loss;
}

/* Walk one span of the corpus sentence by sentence: subsample, draw each centre's reduced window
 * (word2vec's `window - b`, b uniform in [0, window)) inside its sentence, and either train
 * (pairs == NULL) or record the (input, output) pairs skip-gram would train on (for tests). The
 * learning rate falls linearly from alpha_start to alpha_end across the span.
 *
 * ids: the span's token ids; starts: (sentences + 1,) boundaries in ids. Returns the summed loss;
 * *examples gets the number of examples (skip-gram pairs or CBOW centres) visited, or
 * SGNS_NO_MEMORY / SGNS_BAD_ARGUMENT. */
static double walk_span(const Model *m, const int32_t *ids, const int64_t *starts,
                        int64_t sentences, float alpha_start, float alpha_end, uint64_t seed,
                        int64_t *examples, int64_t *pairs, int64_t pair_capacity) {
    uint64_t state = seed;
    const int64_t n = sentences > 0 ? starts[sentences] : 0;
    int64_t longest = 0, visited = 0;
    int32_t contexts[SGNS_MAX_CONTEXTS];
    int32_t noise[SGNS_MAX_NEGATIVE], upcoming[SGNS_MAX_NEGATIVE];
    double loss = 0.0;
    if (m->window < 1 || m->window > SGNS_MAX_WINDOW || m->negative < 0 ||
        m->negative > SGNS_MAX_NEGATIVE || sentences < 0) {
        *examples = SGNS_BAD_ARGUMENT;
        return 0.0;
    }
    for (int64_t s = 0; s < sentences; s++) {
        if (starts[s + 1] < starts[s]) {
            *examples = SGNS_BAD_ARGUMENT;
            return 0.0;
        }
        if (starts[s + 1] - starts[s] > longest) longest = starts[s + 1] - starts[s];
    }
    int32_t *kept = malloc(sizeof(int32_t) * (size_t)(longest + 1));
    const int64_t widest = 2 * (int64_t)m->window; /* contexts a centre can have in this run */
    float *scratch = malloc(sizeof(float) * (size_t)(widest * (m->dim + 1 + m->negative)));
    if (kept == NULL || scratch == NULL) {
        free(kept);
        free(scratch);
        *examples = SGNS_NO_MEMORY;
        return 0.0;
    }
    if (pairs == NULL) {
        for (int k = 0; k < m->negative; k++) upcoming[k] = draw_noise(m, &state);
    }
    for (int64_t s = 0; s < sentences; s++) {
        int64_t kept_count = 0;
        for (int64_t i = starts[s]; i < starts[s + 1]; i++) {
            if (unit_float(next_random(&state)) < m->keep_prob[ids[i]]) kept[kept_count++] = ids[i];
        }
        float alpha = alpha_start + (alpha_end - alpha_start) * (float)starts[s] / (float)n;
        for (int64_t i = 0; i < kept_count; i++) {
            int reach = m->window - (int)below(next_random(&state), m->window);
            int64_t lo = i - reach < 0 ? 0 : i - reach;
            int64_t hi = i + reach >= kept_count ? kept_count - 1 : i + reach;
            int count = 0;
            for (int64_t j = lo; j <= hi; j++) {
                if (j != i) contexts[count++] = kept[j];
            }
            if (count == 0) continue;
            if (pairs != NULL) {
                for (int c = 0; c < count && visited < pair_capacity; c++, visited++) {
                    pairs[2 * visited] = contexts[c];
                    pairs[2 * visited + 1] = kept[i];
                }
                continue;
            }
            /* this centre's noise words were drawn one centre ahead, and their output rows
             * fetched into the cache meanwhile (with the next centre's own output row and the
             * input row entering the widest window): random rows of a large vocabulary are cache
             * misses, and they were the largest cost */
            for (int k = 0; k < m->negative; k++) {
                noise[k] = upcoming[k];
                upcoming[k] = draw_noise(m, &state);
                prefetch_row(m->w_out + (int64_t)upcoming[k] * m->dim, m->dim);
            }
            if (i + 1 < kept_count) prefetch_row(m->w_out + (int64_t)kept[i + 1] * m->dim, m->dim);
            if (i + 1 + m->window < kept_count)
                prefetch_row(m->w_in + (int64_t)kept[i + 1 + m->window] * m->dim, m->dim);
            if (m->cbow) {
                loss += train_cbow(m, contexts, count, kept[i], noise, alpha, scratch);
                visited++;
            } else {
                float *grads = scratch + widest * m->dim;
                loss += train_skipgram_window(m, contexts, count, kept[i], noise, alpha, grads, scratch);
                visited += count;
            }
        }
    }
    free(kept);
    free(scratch);
    *examples = visited;
    return loss;
}

static Model make_model(float *w_in, float *w_out, int64_t vocab, int64_t dim,
                        const float *keep_prob, const float *noise_accept,
                        const int32_t *noise_alias, int window, int negative, int cbow) {
    Model m = {w_in, w_out, vocab, dim, keep_prob, noise_accept, noise_alias, window, negative, cbow};
    return m;
}

/* Train on one span; see walk_span. */
double sgns_train_span(float *w_in, float *w_out, int64_t vocab, int64_t dim,
                       const float *keep_prob, const float *noise_accept,
                       const int32_t *noise_alias, int window, int negative, int cbow,
                       const int32_t *ids, const int64_t *starts, int64_t sentences,
                       float alpha_start, float alpha_end, uint64_t seed, int64_t *examples) {
    Model m = make_model(w_in, w_out, vocab, dim, keep_prob, noise_accept, noise_alias, window,
                         negative, cbow);
    return walk_span(&m, ids, starts, sentences, alpha_start, alpha_end, seed, examples, NULL, 0);
}

/* The skip-gram (input, output) pairs a span would train on, written to pairs (capacity, 2);
 * returns their number, or SGNS_NO_MEMORY / SGNS_BAD_ARGUMENT. */
int64_t sgns_span_pairs(const float *keep_prob, int64_t vocab, int window, const int32_t *ids,
                        const int64_t *starts, int64_t sentences, uint64_t seed, int64_t *pairs,
                        int64_t capacity) {
    Model m = make_model(NULL, NULL, vocab, 0, keep_prob, NULL, NULL, window, 0, 0);
    int64_t examples = 0;
    walk_span(&m, ids, starts, sentences, 0.0f, 0.0f, seed, &examples, pairs, capacity);
    return examples;
}

/* Train on explicit examples, in order (for tests against the PyTorch step and the float64
 * reference). inputs: (count, width) input word ids, -1 where unused; targets: (count,
 * 1 + negative) output words, true word first. CBOW averages a row's inputs; skip-gram trains
 * them as one centre's window (train_skipgram_window; one input is word2vec's plain example).
 * Returns the summed loss, or NaN when width > SGNS_MAX_CONTEXTS or negative > SGNS_MAX_NEGATIVE
 * (or memory is short). */
double sgns_train_examples(float *w_in, float *w_out, int64_t vocab, int64_t dim, int negative,
                           int cbow, const int32_t *inputs, int width, const int32_t *targets,
                           int64_t count, float alpha) {
    Model m = make_model(w_in, w_out, vocab, dim, NULL, NULL, NULL, 0, negative, cbow);
    int32_t contexts[SGNS_MAX_CONTEXTS];
    double loss = 0.0;
    if (width < 1 || width > SGNS_MAX_CONTEXTS || negative < 0 || negative > SGNS_MAX_NEGATIVE)
        return NAN;
    const int64_t rows = width < 2 ? 2 : width; /* CBOW's hidden and step take 2 * dim */
    float *scratch = malloc(sizeof(float) * (size_t)(rows * (dim + 1 + negative)));
    if (scratch == NULL) return NAN;
    for (int64_t e = 0; e < count; e++) {
        const int32_t *row = inputs + e * width;
        const int32_t *target = targets + e * (1 + negative);
        int used = 0;
        for (int c = 0; c < width; c++) {
            if (row[c] >= 0) contexts[used++] = row[c];
        }
        if (used == 0) continue;
        if (cbow) {
            loss += train_cbow(&m, contexts, used, target[0], target + 1, alpha, scratch);
        } else {
            loss += train_skipgram_window(&m, contexts, used, target[0], target + 1, alpha,
                                          scratch + rows * dim, scratch);
        }
    }
    free(scratch);
    return loss;
}
