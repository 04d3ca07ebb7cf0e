/*
 * search: text analysis shared by indexing and queries (docs/internals/search.md).
 *
 * The analyzer turns text into the terms the index holds and queries look up: words are
 * cut at anything that is not a letter or a digit, lowercased (full Unicode simple case
 * mapping), folded (accents and other diacritics removed, ß -> ss, æ -> ae ...), then
 * stemmed with the Snowball stemmer of the text's language. Folding comes before
 * stemming, so a word with or without its accents gives the same term by construction:
 * `inflación`, `inflacion` and `inflaciones` are all `inflacion`; `elections` and
 * `election` are `elect`. Every backend indexes the terms this module makes, so SQLite,
 * PostgreSQL or any other store find the same things.
 */
#ifndef ACERVO_SEARCH_H
#define ACERVO_SEARCH_H

#include "core/core.h"

#include <stddef.h>

/** The languages with a stemmer; NONE folds without stemming (names, tags, codes). */
enum search_lang { SEARCH_LANG_NONE = 0, SEARCH_LANG_ES, SEARCH_LANG_EN, SEARCH_LANG_COUNT };

/** Longest term in bytes (UTF-8); a longer word is cut at a character boundary. */
#define SEARCH_TERM_MAX 64

/** One term of a text, valid during the callback only. */
struct search_token {
    const char *term; /* folded (and stemmed): NUL-terminated, at most SEARCH_TERM_MAX bytes */
    size_t len;
    int pos;      /* word position in the text: 0, 1, 2 ... (phrases) */
    size_t start; /* the word's bytes in the input: [start, end) (highlighting) */
    size_t end;
};

/** Called for every term; a non-zero return stops the analysis and is returned by it. */
typedef int (*search_token_fn)(void *ctx, const struct search_token *t);

/** An analyzer holds one stemmer per language: use one per thread. */
struct search_analyzer;

/** A new analyzer; ERR_BACKEND when a stemmer cannot be created. */
int search_analyzer_new(struct search_analyzer **out, struct err *err);
/** Frees a (NULL is fine). */
void search_analyzer_free(struct search_analyzer *a);

/**
 * The language of a code: "es", "en" (a region or script after '-' or '_' is ignored:
 * "es-ES", "en_GB"), else SEARCH_LANG_NONE.
 */
enum search_lang search_lang_parse(const char *code);
/** "es", "en" or "" for NONE. */
const char *search_lang_code(enum search_lang lang);

/**
 * Analyses len bytes of UTF-8 text in language lang, calling fn for every term in order.
 * Bytes that are not valid UTF-8 separate words. Returns 0, or fn's first non-zero value.
 */
int search_analyze(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                   search_token_fn fn, void *ctx);

/**
 * The term of one word without stemming (a prefix being typed, a tag, a name part):
 * lowercased and folded into out (NUL-terminated, at most SEARCH_TERM_MAX bytes plus the
 * NUL, so n must be at least SEARCH_TERM_MAX + 1). Characters that are not letters or
 * digits are dropped. Returns the term's length.
 */
size_t search_fold(const char *word, size_t len, char *out, size_t n);

#endif
