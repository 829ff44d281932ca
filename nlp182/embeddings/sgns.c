/* word2vec negative sampling (skip-gram and CBOW) for the CPU, one corpus span per call.
 *
 * The batched PyTorch step in word2vec.py pays, per SGD step, for a dozen tensor operations and
 * copies of every row it touches; on a CPU that overhead, not arithmetic, bounds its speed. This
 * file runs the same algorithm the way word2vec's C tool does it: walk the tokens, subsample,
 * draw each centre's window, and update the rows in place one example at a time (each example
 * sees the previous one's update). Several threads call sgns_train_span on different spans at
 * once and update the shared matrices without locks (Hogwild, as word2vec and gensim do).
 *
 * Matrices are row-major float32: w_in and w_out are (vocab, dim). Token arrays are int64.
 * Compiled on first use by nlp182/embeddings/native.py and called through ctypes (which releases
 * the GIL, so Python threads run spans in parallel).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define MAX_EXP 6.0f

typedef struct {
    float *w_in, *w_out;
    int64_t vocab, dim;
    const float *keep_prob;    /* (vocab,) probability of keeping a token (subsampling) */
    const float *noise_accept; /* (vocab,) alias-table acceptance probabilities */
    const int64_t *noise_alias; /* (vocab,) alias-table alternatives */
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

static inline int64_t draw_noise(const Model *m, uint64_t *state) {
    uint64_t r = next_random(state);
    int64_t slot = below(r, m->vocab);
    return unit_float(r) < m->noise_accept[slot] ? slot : m->noise_alias[slot];
}

/* One example: logistic steps for the true output word `target` and `negative` noise words given
 * the hidden vector `hidden` (dim,); output rows are updated in place, the hidden step is
 * accumulated into `hidden_step` (dim,). A noise word equal to the target is skipped, and so is
 * a term whose score is saturated (|score| >= MAX_EXP), as in word2vec. Returns the loss. */
static double train_outputs(const Model *m, const float *hidden, int64_t target,
                            const int64_t *noise, float alpha, float *hidden_step) {
    const int64_t dim = m->dim;
    double loss = 0.0;
    for (int64_t d = 0; d < dim; d++) hidden_step[d] = 0.0f;
    for (int k = 0; k <= m->negative; k++) {
        int64_t word = k == 0 ? target : noise[k - 1];
        if (k > 0 && word == target) continue;
        float *row = m->w_out + word * dim;
        float score = 0.0f;
        for (int64_t d = 0; d < dim; d++) score += row[d] * hidden[d];
        if (score >= MAX_EXP || score <= -MAX_EXP) continue;
        float sigma = 1.0f / (1.0f + expf(-score));
        float label = k == 0 ? 1.0f : 0.0f;
        float g = (label - sigma) * alpha;
        loss -= log(k == 0 ? sigma : 1.0f - sigma);
        for (int64_t d = 0; d < dim; d++) {
            hidden_step[d] += g * row[d];
            row[d] += g * hidden[d];
        }
    }
    return loss;
}

/* Skip-gram example: the input row of `input` predicts `target`. */
static double train_skipgram(const Model *m, int64_t input, int64_t target, const int64_t *noise,
                             float alpha, float *scratch) {
    float *row = m->w_in + input * m->dim;
    double loss = train_outputs(m, row, target, noise, alpha, scratch);
    for (int64_t d = 0; d < m->dim; d++) row[d] += scratch[d];
    return loss;
}

/* CBOW example: the mean of `count` context input rows predicts `target`; every context row
 * receives the full hidden step (gensim's cbow_mean=1). `scratch` holds 2 * dim floats. */
static double train_cbow(const Model *m, const int64_t *contexts, int count, int64_t target,
                         const int64_t *noise, float alpha, float *scratch) {
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

/* Walk one span of the corpus: subsample, draw each centre's reduced window (word2vec's
 * `window - b`, b uniform in [0, window)), keep windows inside the centre's sentence, and either
 * train (pairs == NULL) or record the (input, output) pairs skip-gram would train on (for tests).
 * The learning rate falls linearly from alpha_start to alpha_end across the span.
 *
 * ids, sentence: (n,) token ids and sentence numbers. Returns the summed loss; *examples gets the
 * number of examples (skip-gram pairs or CBOW centres) visited. */
static double walk_span(const Model *m, const int64_t *ids, const int64_t *sentence, int64_t n,
                        float alpha_start, float alpha_end, uint64_t seed, int64_t *examples,
                        int64_t *pairs, int64_t pair_capacity) {
    uint64_t state = seed;
    int64_t *kept = malloc(sizeof(int64_t) * (size_t)(2 * n + 1));
    int64_t *kept_sentence = kept + n;
    float *scratch = malloc(sizeof(float) * (size_t)(2 * m->dim));
    int64_t contexts[2 * 128 + 1];
    int64_t noise[64];
    int64_t kept_count = 0, visited = 0;
    double loss = 0.0;
    if (kept == NULL || scratch == NULL) {
        free(kept);
        free(scratch);
        *examples = -1;
        return 0.0;
    }
    for (int64_t i = 0; i < n; i++) {
        if (unit_float(next_random(&state)) < m->keep_prob[ids[i]]) {
            kept[kept_count] = ids[i];
            kept_sentence[kept_count++] = sentence[i];
        }
    }
    for (int64_t i = 0; i < kept_count; i++) {
        float alpha = alpha_start + (alpha_end - alpha_start) * (float)i / (float)kept_count;
        int reach = m->window - (int)below(next_random(&state), m->window);
        int64_t lo = i - reach < 0 ? 0 : i - reach;
        int64_t hi = i + reach >= kept_count ? kept_count - 1 : i + reach;
        int count = 0;
        for (int64_t j = lo; j <= hi; j++) {
            if (j != i && kept_sentence[j] == kept_sentence[i]) contexts[count++] = kept[j];
        }
        if (count == 0) continue;
        if (pairs != NULL) {
            for (int c = 0; c < count && visited < pair_capacity; c++, visited++) {
                pairs[2 * visited] = contexts[c];
                pairs[2 * visited + 1] = kept[i];
            }
            continue;
        }
        if (m->cbow) {
            for (int k = 0; k < m->negative; k++) noise[k] = draw_noise(m, &state);
            loss += train_cbow(m, contexts, count, kept[i], noise, alpha, scratch);
            visited++;
        } else {
            for (int c = 0; c < count; c++) {
                for (int k = 0; k < m->negative; k++) noise[k] = draw_noise(m, &state);
                loss += train_skipgram(m, contexts[c], kept[i], noise, alpha, scratch);
            }
            visited += count;
        }
    }
    free(kept);
    free(scratch);
    *examples = visited;
    return loss;
}

static Model make_model(float *w_in, float *w_out, int64_t vocab, int64_t dim,
                        const float *keep_prob, const float *noise_accept,
                        const int64_t *noise_alias, int window, int negative, int cbow) {
    Model m = {w_in, w_out, vocab, dim, keep_prob, noise_accept, noise_alias, window, negative, cbow};
    return m;
}

/* Train on one span; see walk_span. window <= 128 and negative <= 64 (checked by the caller). */
double sgns_train_span(float *w_in, float *w_out, int64_t vocab, int64_t dim,
                       const float *keep_prob, const float *noise_accept,
                       const int64_t *noise_alias, int window, int negative, int cbow,
                       const int64_t *ids, const int64_t *sentence, int64_t n, float alpha_start,
                       float alpha_end, uint64_t seed, int64_t *examples) {
    Model m = make_model(w_in, w_out, vocab, dim, keep_prob, noise_accept, noise_alias, window,
                         negative, cbow);
    return walk_span(&m, ids, sentence, n, alpha_start, alpha_end, seed, examples, NULL, 0);
}

/* The skip-gram (input, output) pairs a span would train on, written to pairs (capacity, 2). */
int64_t sgns_span_pairs(const float *keep_prob, int64_t vocab, int window, const int64_t *ids,
                        const int64_t *sentence, int64_t n, uint64_t seed, int64_t *pairs,
                        int64_t capacity) {
    Model m = make_model(NULL, NULL, vocab, 0, keep_prob, NULL, NULL, window, 0, 0);
    int64_t examples = 0;
    walk_span(&m, ids, sentence, n, 0.0f, 0.0f, seed, &examples, pairs, capacity);
    return examples;
}

/* Train on explicit examples, in order (for tests against the PyTorch step).
 * inputs: (count, width) input word ids, -1 where unused (skip-gram uses column 0 only);
 * targets: (count, 1 + negative) output words, true word first. Returns the summed loss. */
double sgns_train_examples(float *w_in, float *w_out, int64_t vocab, int64_t dim, int negative,
                           int cbow, const int64_t *inputs, int width, const int64_t *targets,
                           int64_t count, float alpha) {
    Model m = make_model(w_in, w_out, vocab, dim, NULL, NULL, NULL, 0, negative, cbow);
    float *scratch = malloc(sizeof(float) * (size_t)(2 * dim));
    int64_t contexts[2 * 128 + 1];
    double loss = 0.0;
    if (scratch == NULL) return NAN;
    for (int64_t e = 0; e < count; e++) {
        const int64_t *row = inputs + e * width;
        const int64_t *target = targets + e * (1 + negative);
        if (cbow) {
            int used = 0;
            for (int c = 0; c < width; c++) {
                if (row[c] >= 0) contexts[used++] = row[c];
            }
            if (used > 0) loss += train_cbow(&m, contexts, used, target[0], target + 1, alpha, scratch);
        } else {
            loss += train_skipgram(&m, row[0], target[0], target + 1, alpha, scratch);
        }
    }
    free(scratch);
    return loss;
}
