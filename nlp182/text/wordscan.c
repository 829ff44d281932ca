/* The word tokenizer's rules on ASCII text, with each word numbered as it is first seen.
 *
 * tokenize.py's rules on ASCII text are: lowercase (optional), then the words are the matches of
 * \w+(?:['-]\w+)* where \w is [A-Za-z0-9_], and every '\n' ends a line. Python's regular
 * expression scan and the dictionary that numbers its matches cost about 55 ms per MB; this file
 * does the same in one pass over the bytes with an open-addressing hash table, about 6 times
 * faster. Lines with other bytes come tokenized by Python (Unicode normalisation and word classes)
 * and are numbered in place. Where no C compiler is available, encoded.py keeps the Python path;
 * tests check both give the same tokens and numbers.
 *
 * The whitespace rule (tokenize.py's WhitespaceTokenizer, gensim's LineSentence) takes as words the
 * runs of bytes that are not ASCII whitespace as Python's str.split() has it: space, \t, \v, \f,
 * \r and the separators 0x1c-0x1f (Unicode whitespace comes only in non-ASCII lines, which Python
 * tokenizes).
 *
 * Compiled on first use by nlp182/text/wordscan.py and called through ctypes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Returned when a buffer is too small or memory is short. */
#define WORDSCAN_NO_ROOM (-1)
#define WORDSCAN_NO_MEMORY (-2)

static inline int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* What str.split() splits ASCII text at, '\n' aside (it ends a line). */
static inline int is_space(unsigned char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/* The rules, as wordscan_number's `rules` takes them. */
#define WORDSCAN_WORDS 0
#define WORDSCAN_WHITESPACE 1

static inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

/* FNV-1a over a word, lowercased as it is read. */
static inline uint64_t word_hash(const unsigned char *word, int64_t length, int lowercase) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (int64_t i = 0; i < length; i++) {
        hash ^= lowercase ? lower(word[i]) : word[i];
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

/* The words seen so far: an open-addressing hash table of their numbers, and their text. */
typedef struct {
    uint64_t *hashes;
    uint32_t *slots; /* word number (1-based); 0 marks an empty slot */
    uint64_t mask;   /* capacity - 1, capacity a power of two */
    int64_t words;
    int64_t *offsets;    /* (words + 1,) where each word starts in text */
    int64_t offsets_capacity;
    unsigned char *text; /* the words in order of number, each followed by '\n' */
    int64_t text_used, text_capacity;
} Table;

void wordscan_free(Table *t) {
    if (t == NULL) return;
    free(t->hashes);
    free(t->slots);
    free(t->offsets);
    free(t->text);
    free(t);
}

/* An empty table, or NULL when memory is short. */
Table *wordscan_new(void) {
    Table *t = calloc(1, sizeof(Table));
    if (t == NULL) return NULL;
    t->mask = 1023;
    t->offsets_capacity = 1024;
    t->text_capacity = 1 << 16;
    t->hashes = calloc(t->mask + 1, sizeof(uint64_t));
    t->slots = calloc(t->mask + 1, sizeof(uint32_t));
    t->offsets = calloc((size_t)t->offsets_capacity, sizeof(int64_t));
    t->text = malloc((size_t)t->text_capacity);
    if (t->hashes == NULL || t->slots == NULL || t->offsets == NULL || t->text == NULL) {
        wordscan_free(t);
        return NULL;
    }
    return t;
}

/* Make room for one more word of `length` bytes; 0 when memory is short. */
static int reserve(Table *t, int64_t length) {
    if (t->words + 2 > t->offsets_capacity) {
        int64_t *offsets = realloc(t->offsets, sizeof(int64_t) * (size_t)(2 * t->offsets_capacity));
        if (offsets == NULL) return 0;
        t->offsets = offsets;
        t->offsets_capacity *= 2;
    }
    while (t->text_used + length + 1 > t->text_capacity) {
        unsigned char *text = realloc(t->text, (size_t)(2 * t->text_capacity));
        if (text == NULL) return 0;
        t->text = text;
        t->text_capacity *= 2;
    }
    return 1;
}

static int grow(Table *t) {
    uint64_t capacity = 2 * (t->mask + 1);
    uint64_t *hashes = calloc(capacity, sizeof(uint64_t));
    uint32_t *slots = calloc(capacity, sizeof(uint32_t));
    if (hashes == NULL || slots == NULL) {
        free(hashes);
        free(slots);
        return 0;
    }
    for (uint64_t i = 0; i <= t->mask; i++) {
        if (t->slots[i] == 0) continue;
        uint64_t at = t->hashes[i] & (capacity - 1);
        while (slots[at] != 0) at = (at + 1) & (capacity - 1);
        hashes[at] = t->hashes[i];
        slots[at] = t->slots[i];
    }
    free(t->hashes);
    free(t->slots);
    t->hashes = hashes;
    t->slots = slots;
    t->mask = capacity - 1;
    return 1;
}

/* The number (1-based) of `word`, adding it when new; 0 when memory is short. */
static uint32_t number_of(Table *t, const unsigned char *word, int64_t length, int lowercase) {
    uint64_t hash = word_hash(word, length, lowercase);
    uint64_t at = hash & t->mask;
    while (t->slots[at] != 0) {
        if (t->hashes[at] == hash) {
            int64_t number = t->slots[at] - 1;
            const unsigned char *known = t->text + t->offsets[number];
            int64_t known_length = t->offsets[number + 1] - t->offsets[number] - 1;
            if (known_length == length) {
                int64_t i = 0;
                if (lowercase) {
                    while (i < length && known[i] == lower(word[i])) i++;
                } else {
                    i = memcmp(known, word, (size_t)length) == 0 ? length : 0;
                }
                if (i == length) return t->slots[at];
            }
        }
        at = (at + 1) & t->mask;
    }
    if (2 * (uint64_t)(t->words + 1) > t->mask + 1) {
        if (!grow(t)) return 0;
        return number_of(t, word, length, lowercase);
    }
    if (!reserve(t, length)) return 0;
    for (int64_t i = 0; i < length; i++) t->text[t->text_used + i] = lowercase ? lower(word[i]) : word[i];
    t->text_used += length;
    t->text[t->text_used++] = '\n';
    t->words++;
    t->offsets[t->words] = t->text_used;
    t->hashes[at] = hash;
    t->slots[at] = (uint32_t)t->words;
    return (uint32_t)t->words;
}

/* The next token of a pre-tokenized buffer ("w1\nw2\n\nw3": words separated by '\n', an empty
 * word marking a line end); *at moves past it. */
static inline int64_t next_token(const unsigned char *pre, int64_t pre_length, int64_t *at) {
    int64_t start = *at, end = start;
    while (end < pre_length && pre[end] != '\n') end++;
    *at = end + 1;
    return end - start;
}

/* Tokenize data[0, length) and number its words by first appearance, continuing the numbering
 * of the earlier calls on the same table (so a corpus is numbered piece by piece).
 *
 * Lines the caller tokenized itself (those with non-ASCII bytes, whose rules need Unicode
 * tables) are the byte ranges deferred[2k, 2k + 1) (sorted, each from a line's start to its '\n'),
 * and their words are in `pre`, a pre-tokenized buffer holding each deferred line's words in
 * order followed by an empty word. Their words are numbered where they occur, so the numbering
 * is the same as tokenizing the whole text in order.
 *
 * ids: one entry per token in order, the word's number (1-based), or 0 for a line end; at most
 * length + 1 + (words in pre) of them. *first_new gets the number of the first word this call
 * added (the words it added are wordscan_words from there). Returns the number of ids written,
 * or WORDSCAN_NO_ROOM (ids_capacity too small) / WORDSCAN_NO_MEMORY. Outside the deferred lines,
 * bytes >= 0x80 are not word characters. rules: WORDSCAN_WORDS or WORDSCAN_WHITESPACE. */
int64_t wordscan_number(Table *t, const unsigned char *data, int64_t length, int lowercase, int rules,
                        const int64_t *deferred, int64_t deferred_count, const unsigned char *pre,
                        int64_t pre_length, uint32_t *ids, int64_t ids_capacity, int64_t *first_new) {
    int64_t count = 0, next_deferred = 0, pre_at = 0, i = 0;
    *first_new = t->words + 1;
    while (i < length) {
        if (count >= ids_capacity) return WORDSCAN_NO_ROOM;
        if (next_deferred < deferred_count && i == deferred[2 * next_deferred]) {
            for (;;) {
                int64_t start = pre_at, word_length = next_token(pre, pre_length, &pre_at);
                if (word_length == 0) break;
                if (count >= ids_capacity) return WORDSCAN_NO_ROOM;
                uint32_t number = number_of(t, pre + start, word_length, lowercase);
                if (number == 0) return WORDSCAN_NO_MEMORY;
                ids[count++] = number;
            }
            i = deferred[2 * next_deferred + 1];
            next_deferred++;
            continue;
        }
        unsigned char c = data[i];
        if (c == '\n') {
            ids[count++] = 0;
            i++;
            continue;
        }
        if (rules == WORDSCAN_WHITESPACE) {
            if (is_space(c)) {
                i++;
                continue;
            }
            int64_t start = i;
            while (i < length && data[i] != '\n' && !is_space(data[i])) i++;
            uint32_t number = number_of(t, data + start, i - start, lowercase);
            if (number == 0) return WORDSCAN_NO_MEMORY;
            ids[count++] = number;
            continue;
        }
        if (!is_word(c)) {
            i++;
            continue;
        }
        int64_t start = i;
        while (i < length && is_word(data[i])) i++;
        /* (?:['-]\w+)*: a joiner continues the word only when a word character follows it */
        while (i + 1 < length && (data[i] == '\'' || data[i] == '-') && is_word(data[i + 1])) {
            i++;
            while (i < length && is_word(data[i])) i++;
        }
        uint32_t number = number_of(t, data + start, i - start, lowercase);
        if (number == 0) return WORDSCAN_NO_MEMORY;
        ids[count++] = number;
    }
    return count;
}

/* The number of words in the table. */
int64_t wordscan_size(const Table *t) { return t->words; }

/* The text of words first..last (1-based, inclusive), each followed by '\n', copied to out
 * (capacity bytes); returns the bytes copied (or, when out is NULL, the bytes needed), or
 * WORDSCAN_NO_ROOM. */
int64_t wordscan_words(const Table *t, int64_t first, int64_t last, unsigned char *out, int64_t capacity) {
    if (first < 1 || last > t->words || first > last + 1) return WORDSCAN_NO_ROOM;
    int64_t start = t->offsets[first - 1], end = t->offsets[last];
    if (out == NULL) return end - start;
    if (end - start > capacity) return WORDSCAN_NO_ROOM;
    memcpy(out, t->text + start, (size_t)(end - start));
    return end - start;
}
